//! Real run: ISC dhcpd in private network namespaces, leases taken by dhclient and perfdhcp, then
//! the real `dhcpd.leases` read back and the counts compared with what the clients got.
//!
//! Topology (198.18.200.0/23 only, namespaces named `iscrt-<pid>-*`, deleted on drop):
//!   cli:c0 ⇄ srv:s0 198.18.200.1/24   dhclient, three MACs one after another (one releases)
//!   prf:p0 198.18.201.2/24 ⇄ srv:s1 198.18.201.1/24   perfdhcp acting as a relay (giaddr .2)
//! Root-gated: prints `SKIP: reason` without root or peers, panics instead under `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leased_isc::{BindingState, read_conf, read_leases, subnet_stats};

fn find_bin(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    // "Uid:\treal\teffective\t…" — no libc needed.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// True when the test may run; otherwise SKIP (or panic under CI=true).
fn gate(test: &str, bins: &[&str]) -> bool {
    let mut why = Vec::new();
    if !is_root() {
        why.push("not running as root (network namespaces need root)".to_string());
    }
    let missing: Vec<&str> = bins
        .iter()
        .copied()
        .filter(|b| find_bin(b).is_none())
        .collect();
    if !missing.is_empty() {
        why.push(format!("missing binaries: {}", missing.join(", ")));
    }
    if why.is_empty() {
        return true;
    }
    let reason = why.join("; ");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: prerequisites missing under CI=true: {reason}");
    }
    eprintln!("SKIP: {test}: {reason}");
    false
}

fn bin(name: &str) -> String {
    find_bin(name)
        .unwrap_or_else(|| PathBuf::from(name))
        .display()
        .to_string()
}

/// Runs a command to completion with a time bound; returns (success, stdout+stderr).
fn run(ns: Option<&str>, args: &[&str], limit: Duration) -> (bool, String) {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new(bin("ip"));
            c.args(["netns", "exec", ns]);
            c.args(args);
            c
        }
        None => {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (st.success(), text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (false, format!("timed out after {limit:?}: {args:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn must(ns: Option<&str>, args: &[&str]) {
    let (ok, out) = run(ns, args, Duration::from_secs(10));
    assert!(ok, "{args:?} failed: {out}");
}

/// Sends `sig` to one process we started, by its PID.
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Stops a child: SIGTERM, a bounded wait, then SIGKILL.
fn stop(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    signal(child.id(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The namespaces and processes of one run; dropping it stops everything and deletes them.
struct Lab {
    namespaces: Vec<String>,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Lab {
    fn ns(&mut self, name: &str) -> String {
        let full = format!("iscrt-{}-{name}", std::process::id());
        let _ = run(
            None,
            &[&bin("ip"), "netns", "del", &full],
            Duration::from_secs(5),
        );
        must(None, &[&bin("ip"), "netns", "add", &full]);
        self.namespaces.push(full.clone());
        must(Some(&full), &["ip", "link", "set", "lo", "up"]);
        full
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self, ns: &str, args: &[&str], log: &Path) -> usize {
        let out = File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(bin("ip"))
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
        self.children.push(child);
        self.children.len() - 1
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            stop(c);
        }
        for ns in &self.namespaces {
            // Anything still inside our own namespaces is ours: stop it by PID.
            let (_, pids) = run(
                None,
                &[&bin("ip"), "netns", "pids", ns],
                Duration::from_secs(5),
            );
            for p in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
            {
                signal(p, "KILL");
            }
            let _ = run(
                None,
                &[&bin("ip"), "netns", "del", ns],
                Duration::from_secs(5),
            );
        }
        if std::env::var("ISC_REAL_KEEP").is_ok_and(|v| v == "1") {
            let p = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()).keep();
            eprintln!("kept {}", p.display());
        }
    }
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The `fixed-address` of the last lease in a dhclient lease file.
fn dhclient_ip(lf: &Path) -> Option<Ipv4Addr> {
    let text = std::fs::read_to_string(lf).ok()?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("fixed-address "))
        .filter_map(|r| r.trim_end_matches(';').trim().parse().ok())
        .next_back()
}

const CONF: &str = "\
authoritative;
ddns-update-style none;
default-lease-time 3600;
max-lease-time 7200;
ping-check false;
option domain-name \"isc-real.example\";
subnet 198.18.200.0 netmask 255.255.255.0 {
  range 198.18.200.10 198.18.200.59;
  option routers 198.18.200.1;
  host fixed1 { hardware ethernet 02:00:00:00:99:01; fixed-address 198.18.200.5; }
}
subnet 198.18.201.0 netmask 255.255.255.0 {
  pool { range 198.18.201.10 198.18.201.109; }
  option routers 198.18.201.1;
}
";

#[test]
fn real_dhcpd_leases_match_clients() {
    if !gate(
        "real_dhcpd_leases_match_clients",
        &["ip", "dhcpd", "dhclient", "perfdhcp", "timeout"],
    ) {
        return;
    }
    let mut lab = Lab {
        namespaces: Vec::new(),
        children: Vec::new(),
        dir: tempfile::Builder::new().prefix("iscrt.").tempdir().unwrap(),
    };
    let srv = lab.ns("srv");
    let cli = lab.ns("cli");
    let prf = lab.ns("prf");
    let ip = bin("ip");
    must(
        None,
        &[
            &ip, "link", "add", "c0", "netns", &cli, "type", "veth", "peer", "name", "s0", "netns",
            &srv,
        ],
    );
    must(
        None,
        &[
            &ip, "link", "add", "p0", "netns", &prf, "type", "veth", "peer", "name", "s1", "netns",
            &srv,
        ],
    );
    must(
        Some(&srv),
        &["ip", "addr", "add", "198.18.200.1/24", "dev", "s0"],
    );
    must(
        Some(&srv),
        &["ip", "addr", "add", "198.18.201.1/24", "dev", "s1"],
    );
    must(
        Some(&prf),
        &["ip", "addr", "add", "198.18.201.2/24", "dev", "p0"],
    );
    for (ns, ifc) in [(&srv, "s0"), (&srv, "s1"), (&cli, "c0"), (&prf, "p0")] {
        must(Some(ns), &["ip", "link", "set", ifc, "up"]);
    }

    // dhcpd
    let conf = lab.path("dhcpd.conf");
    let leases = lab.path("dhcpd.leases");
    let pidf = lab.path("dhcpd.pid");
    let dlog = lab.path("dhcpd.log");
    std::fs::write(&conf, CONF).unwrap();
    std::fs::write(&leases, "").unwrap();
    let d = lab.spawn(
        &srv,
        &[
            &bin("dhcpd"),
            "-4",
            "-f",
            "-d",
            "-cf",
            &conf.display().to_string(),
            "-lf",
            &leases.display().to_string(),
            "-pf",
            &pidf.display().to_string(),
            "s0",
            "s1",
        ],
        &dlog,
    );
    let log = || std::fs::read_to_string(&dlog).unwrap_or_default();
    let started = wait_for(Duration::from_secs(15), || {
        log().contains("Server starting service") || log().contains("Sending on   Socket/fallback")
    });
    assert!(started, "dhcpd did not start:\n{}", log());
    assert!(
        lab.children[d].try_wait().unwrap().is_none(),
        "dhcpd exited:\n{}",
        log()
    );

    // dhclient: three clients (MACs) one after another on c0; the third releases.
    let dconf = lab.path("dhclient.conf");
    std::fs::write(&dconf, "timeout 20;\nretry 1;\ninitial-interval 1;\n").unwrap();
    let macs = [
        "02:00:00:00:aa:01",
        "02:00:00:00:aa:02",
        "02:00:00:00:aa:03",
    ];
    let mut got: Vec<Ipv4Addr> = Vec::new();
    for (i, mac) in macs.iter().enumerate() {
        must(Some(&cli), &["ip", "link", "set", "c0", "down"]);
        must(Some(&cli), &["ip", "link", "set", "c0", "address", mac]);
        must(Some(&cli), &["ip", "link", "set", "c0", "up"]);
        let lf = lab.path(&format!("dhclient{i}.leases"));
        let pf = lab.path(&format!("dhclient{i}.pid"));
        let args = |extra: &str| -> Vec<String> {
            let mut a = vec![
                bin("dhclient"),
                "-4".into(),
                "-v".into(),
                "-cf".into(),
                dconf.display().to_string(),
                "-lf".into(),
                lf.display().to_string(),
                "-pf".into(),
                pf.display().to_string(),
                "-sf".into(),
                "/bin/true".into(),
            ];
            a.extend(extra.split_whitespace().map(String::from));
            a.push("c0".into());
            a
        };
        let a = args("-1 -d");
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let c = lab.spawn(&cli, &a, &lab.path(&format!("dhclient{i}.log")));
        let bound = wait_for(Duration::from_secs(30), || dhclient_ip(&lf).is_some());
        let dl = std::fs::read_to_string(lab.path(&format!("dhclient{i}.log"))).unwrap_or_default();
        assert!(
            bound,
            "dhclient {mac} got no lease:\n{dl}\n--- dhcpd:\n{}",
            log()
        );
        got.push(dhclient_ip(&lf).unwrap());
        if i == 2 {
            // `dhclient -r` stops our running instance (its PID file is our child's) and
            // unicasts DHCPRELEASE from the leased address, so the interface needs it (with
            // `-sf /bin/true` dhclient configures nothing itself).
            let cidr = format!("{}/24", got[2]);
            must(Some(&cli), &["ip", "addr", "add", &cidr, "dev", "c0"]);
            let a = args("-r");
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            let (ok, out) = run(Some(&cli), &a, Duration::from_secs(20));
            assert!(ok, "dhclient -r failed: {out}");
            let ip = got[2];
            let released = wait_for(Duration::from_secs(10), || {
                log().contains(&format!("DHCPRELEASE of {ip}"))
            });
            assert!(released, "no DHCPRELEASE seen:\n{}", log());
            must(Some(&cli), &["ip", "addr", "del", &cidr, "dev", "c0"]);
        }
        stop(&mut lab.children[c]);
    }
    let distinct: BTreeSet<_> = got.iter().collect();
    assert_eq!(distinct.len(), 3, "three clients, three addresses: {got:?}");

    // perfdhcp as a relay (giaddr 198.18.201.2), bounded in count and time.
    let (_, pout) = run(
        Some(&prf),
        &[
            &bin("timeout"),
            "-k",
            "5",
            "40",
            &bin("perfdhcp"),
            "-4",
            "-l",
            "p0",
            "-r",
            "20",
            "-R",
            "30",
            "-n",
            "30",
            "-p",
            "15",
            "-W",
            "2000000",
            "-g",
            "single",
            "-b",
            "mac=02:00:00:01:00:00",
            "198.18.201.1",
        ],
        Duration::from_secs(60),
    );
    let mut section = "";
    let mut ra_received = None;
    for l in pout.lines() {
        if l.contains("Statistics for: REQUEST-ACK") {
            section = "RA";
        } else if l.contains("Statistics for:") {
            section = "";
        }
        if section == "RA"
            && let Some(n) = l.strip_prefix("received packets:")
        {
            ra_received = n.trim().parse::<u64>().ok();
        }
    }
    let ra_received = ra_received.unwrap_or_else(|| panic!("no perfdhcp stats:\n{pout}"));
    assert!(
        ra_received >= 10,
        "perfdhcp got only {ra_received} ACKs:\n{pout}"
    );
    // What perfdhcp's clients got, by address, from dhcpd's own log of ACKs.
    let relayed_acked = || -> BTreeSet<Ipv4Addr> {
        log()
            .lines()
            .filter(|l| l.starts_with("DHCPACK on 198.18.201."))
            .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
            .collect()
    };
    let acked = relayed_acked();
    assert!(
        !acked.is_empty() && acked.len() as u64 <= ra_received,
        "{acked:?} vs {ra_received}"
    );

    // Stop dhcpd so the file is complete, then read both files.
    stop(&mut lab.children[d]);
    let c = read_conf(&conf).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let l = read_leases(&leases).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert!(l.server_duid.is_none() || l.server_duid.as_ref().is_some_and(|d| !d.is_empty()));
    // dhcpd writes a binding state on every entry, so the clock decides nothing here.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let st = subnet_stats(&c, &l.leases, now);
    let raw = std::fs::read_to_string(&leases).unwrap();
    eprintln!(
        "dhcpd.leases: {} bytes, {} entries, {} addresses",
        raw.len(),
        l.entries_read,
        l.leases.len()
    );
    eprintln!(
        "stats: {}",
        serde_json::to_string(
            &st.iter()
                .map(|s| (s.network.to_string(), s.ips))
                .collect::<Vec<_>>()
        )
        .unwrap()
    );

    // Subnet 198.18.200.0/24: two dhclients hold leases, one released, one static.
    let s0 = &st[0];
    assert_eq!(s0.network.to_string(), "198.18.200.0/24");
    assert_eq!(s0.ips.total, 50);
    assert_eq!(s0.ips.active, 2, "{raw}");
    assert_eq!(
        s0.ips.free + s0.ips.released,
        1,
        "the released lease: {raw}"
    );
    assert_eq!(s0.ips.unused, 47);
    assert_eq!(s0.ips.static_, 1);
    for (i, mac) in macs.iter().enumerate() {
        let lease = l
            .leases
            .iter()
            .find(|x| x.ip == got[i])
            .expect("lease in file");
        assert_eq!(lease.hardware.as_ref().unwrap().address, *mac);
        let want = if i == 2 {
            lease.binding_state != Some(BindingState::Active)
        } else {
            lease.binding_state == Some(BindingState::Active)
                && lease.starts.is_some()
                && lease.ends.is_some()
                && lease.cltt.is_some()
        };
        assert!(want, "{lease:?}");
    }

    // Subnet 198.18.201.0/24: one active lease per address perfdhcp's clients were ACKed.
    let s1 = &st[1];
    assert_eq!(s1.network.to_string(), "198.18.201.0/24");
    assert_eq!(s1.ips.total, 100);
    assert_eq!(s1.ips.active, acked.len() as u64, "{raw}");
    let active: BTreeSet<Ipv4Addr> = l
        .leases
        .iter()
        .filter(|x| s1.network.contains(&x.ip) && x.binding_state == Some(BindingState::Active))
        .map(|x| x.ip)
        .collect();
    assert_eq!(active, acked);
    assert_eq!(s1.ips.unused, 100 - acked.len() as u64);
    eprintln!(
        "real dhcpd: dhclient {got:?}, perfdhcp RA received {ra_received}, {} relayed leases",
        acked.len()
    );
}
