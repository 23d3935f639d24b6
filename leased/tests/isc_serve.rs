//! `leased isc serve`: the DHCPStats API over ISC dhcpd's files.
//!
//! - Over hand-made files (what a real run cannot produce: overlapping ranges, a lease without
//!   a binding state, unknown statements, a superseded entry): every route, auth, shapes field
//!   by field, and a re-read when the leases file changes.
//! - Over a real ISC dhcpd run in private namespaces (perfdhcp as a relay taking leases; the
//!   approach of crates/isc/tests/real_dhcpd.rs): the API reports the counts the file holds,
//!   while dhcpd keeps writing it. Root-gated: `SKIP: reason`, or a panic under `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "ops/common.rs"]
mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, free_tcp, get, wait_for};
use serde_json::Value;

const KEY: &str = "isc-key-0123456789";

fn json(port: u16, path: &str) -> Value {
    let (st, body) = get(port, path, Some(KEY));
    assert_eq!(st, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn start(conf: &Path, leases: &Path, log: &Path) -> (Proc, u16) {
    let port = free_tcp();
    let listen = format!("127.0.0.1:{port}");
    let p = Proc::spawn(
        &[
            "isc",
            "serve",
            "--conf",
            conf.to_str().unwrap(),
            "--leases",
            leases.to_str().unwrap(),
            "--listen",
            &listen,
            "--key",
            KEY,
        ],
        log,
    );
    assert!(
        wait_for(Duration::from_secs(15), || std::net::TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "isc serve did not listen: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    (p, port)
}

const CONF: &str = "\
option domain-name \"isc.example\";
option domain-name-servers 198.18.0.53, 198.18.0.54;
subnet 198.18.0.0 netmask 255.255.255.0 {
  range 198.18.0.100 198.18.0.149;
  range 198.18.0.140 198.18.0.159;
  option routers 198.18.0.1;
  host printer { hardware ethernet 02:00:00:00:11:01; fixed-address 198.18.0.20; }
  frobnicate yes;
}
shared-network campus {
  subnet 198.18.1.0 netmask 255.255.255.0 {
    pool { range 198.18.1.10 198.18.1.19; }
    option routers 198.18.1.1;
    option ntp-servers 198.18.1.123;
  }
}
host cam { hardware ethernet 02:00:00:00:11:02; fixed-address 198.18.1.5; }
";

const LEASES: &str = "\
# hand-made

lease 198.18.0.100 {
  starts 1 2026/11/23 09:00:00;
  ends 1 2026/11/23 11:00:00;
  cltt 1 2026/11/23 09:00:00;
  binding state active;
  hardware ethernet 02:00:00:00:22:01;
  uid \"\\001\\002\\000\\000\\000\\\"\\001\";
  client-hostname \"one\";
}
lease 198.18.0.101 {
  binding state free;
  hardware ethernet 02:00:00:00:22:02;
}
lease 198.18.0.102 {
  binding state active;
  hardware ethernet 02:00:00:00:22:05;
}
lease 198.18.0.102 {
  binding state released;
  hardware ethernet 02:00:00:00:22:05;
}
lease 198.18.1.11 {
  # no binding state at all
  starts 1 2026/11/23 09:00:00;
  some-unknown-statement 42;
}
lease 198.18.1.12 {
  binding state backup;
}
";

#[test]
fn isc_serve_over_hand_made_files() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dhcpd.conf");
    let leases = dir.path().join("dhcpd.leases");
    std::fs::write(&conf, CONF).unwrap();
    std::fs::write(&leases, LEASES).unwrap();
    let (mut p, port) = start(&conf, &leases, &dir.path().join("isc.log"));

    // Auth: every route needs the key.
    for path in [
        "/",
        "/subnets",
        "/subnets/list",
        "/subnets/all",
        "/counts",
        "/subnets/198.18.0.0",
    ] {
        let (st, body) = get(port, path, None);
        assert_eq!(st, 401, "{path}");
        assert_eq!(body, r#"{"message":"X-Api-Key authentication failed."}"#);
        let (st, _) = get(port, path, Some("wrong"));
        assert_eq!(st, 401, "{path}");
    }
    assert_eq!(json(port, "/")["message"], "dhcpstats API");

    let counts = json(port, "/counts");
    assert_eq!(
        counts,
        serde_json::json!({
            "ip_counts": {"total": 70, "active": 1, "released": 1, "free": 1, "backup": 1,
                          "unused": 65, "static": 2},
            "estimated_devices": 3
        })
    );

    let all = json(port, "/subnets");
    assert_eq!(all, json(port, "/subnets/all"));
    let keys: Vec<&String> = all.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["198.18.0.0/24", "198.18.1.0/24"]);
    let s0 = &all["198.18.0.0/24"];
    assert_eq!(
        s0["ranges"],
        serde_json::json!([
            ["198.18.0.100", "198.18.0.149"],
            ["198.18.0.140", "198.18.0.159"]
        ])
    );
    assert_eq!(s0["ips"]["total"], 60, "overlap counted once");
    assert_eq!(s0["ips"]["unused"], 57);
    assert_eq!(s0["routers"], serde_json::json!(["198.18.0.1"]));
    assert_eq!(
        s0["dns_servers"],
        serde_json::json!(["198.18.0.53", "198.18.0.54"])
    );
    assert_eq!(s0["domain_name"], "isc.example");
    assert!(
        s0.get("ntp_servers").is_none(),
        "absent values are omitted: {s0}"
    );
    assert!(s0.get("shared_network").is_none());
    assert_eq!(s0["monitor"], true);
    assert_eq!(s0["description"], "198.18.0.0/24");
    assert_eq!(s0["statics"]["printer"]["mac_address"], "02:00:00:00:11:01");
    assert_eq!(s0["statics"]["printer"]["ip_address"], "198.18.0.20");
    let l = &s0["leases"]["198.18.0.100"];
    assert_eq!(l["binding-state"], "active");
    assert_eq!(l["hardware-ethernet"], "02:00:00:00:22:01");
    assert_eq!(l["client-hostname"], "one");
    assert_eq!(l["starts"], "1 2026/11/23 09:00:00");
    assert_eq!(l["ends"], "1 2026/11/23 11:00:00");
    assert_eq!(l["uid"], "\\001\\002\\000\\000\\000\\\"\\001");
    assert_eq!(
        s0["leases"]["198.18.0.102"]["binding-state"], "released",
        "last entry wins"
    );
    assert!(
        s0["leases"]["198.18.0.101"].get("starts").is_none(),
        "no null for a missing time"
    );
    let s1 = &all["198.18.1.0/24"];
    assert_eq!(s1["shared_network"], "campus");
    assert_eq!(s1["ntp_servers"], serde_json::json!(["198.18.1.123"]));
    assert_eq!(s1["statics"]["cam"]["ip_address"], "198.18.1.5");
    assert!(s1["leases"]["198.18.1.11"].get("binding-state").is_none());

    let list = json(port, "/subnets/list");
    assert!(list["198.18.0.0/24"].get("leases").is_none());
    assert!(list["198.18.0.0/24"].get("statics").is_none());
    assert_eq!(list["198.18.0.0/24"]["ips"], s0["ips"]);

    let one = json(port, "/subnets/198.18.1.0");
    assert_eq!(one["subnet"], "198.18.1.0/24");
    assert_eq!(one["ips"], s1["ips"]);
    assert_eq!(
        json(port, "/subnets/198.18.1.0/24")["subnet"],
        "198.18.1.0/24"
    );
    assert_eq!(
        json(port, "/subnets/198.18.1.0%2F24")["subnet"],
        "198.18.1.0/24"
    );
    let (st, body) = get(port, "/subnets/10.0.0.0", Some(KEY));
    assert_eq!(st, 404, "{body}");
    assert!(body.starts_with("{\"message\""), "{body}");
    let (st, _) = get(port, "/subnets/bogus", Some(KEY));
    assert_eq!(st, 400);
    let (st, _) = get(port, "/leases", Some(KEY));
    assert_eq!(st, 404, "only the DHCPStats routes over ISC files");
    let doc = json(port, "/openapi.json");
    assert!(doc["paths"].get("/counts").is_some());

    // dhcpd appends a lease: the API re-reads the file.
    let mut more = std::fs::read_to_string(&leases).unwrap();
    more.push_str(
        "lease 198.18.1.13 {\n  binding state active;\n  hardware ethernet 02:00:00:00:22:09;\n}\n",
    );
    std::fs::write(&leases, more).unwrap();
    assert!(
        wait_for(
            Duration::from_secs(10),
            || json(port, "/counts")["ip_counts"]["active"] == 2
        ),
        "the change was not picked up"
    );
    // dhcpd rewrites the file by renaming a new one over it: picked up too.
    let tmp = dir.path().join("dhcpd.leases.new");
    std::fs::write(&tmp, "").unwrap();
    std::fs::rename(&tmp, &leases).unwrap();
    assert!(
        wait_for(
            Duration::from_secs(10),
            || json(port, "/counts")["ip_counts"]["active"] == 0
        ),
        "the rewrite was not picked up"
    );
    // A broken conf keeps the last good reading.
    std::fs::write(&conf, "subnet 198.18.0.0 netmask {").unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(json(port, "/counts")["ip_counts"]["total"], 70);
    p.term();
}

// ---- the real ISC dhcpd ----

fn find_bin(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn bin(name: &str) -> String {
    find_bin(name)
        .unwrap_or_else(|| PathBuf::from(name))
        .display()
        .to_string()
}

fn gate(test: &str, bins: &[&str]) -> bool {
    let mut why = Vec::new();
    if !nix::unistd::geteuid().is_root() {
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

/// Runs to completion within `limit`; (success, output).
fn run(ns: Option<&str>, args: &[&str], limit: Duration) -> (bool, String) {
    let mut cmd = Command::new(bin("ip"));
    match ns {
        Some(ns) => {
            cmd.args(["netns", "exec", ns]).args(args);
        }
        None => {
            cmd = Command::new(args[0]);
            cmd.args(&args[1..]);
        }
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (out.status.success(), text);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return (false, format!("timed out: {args:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn must(ns: Option<&str>, args: &[&str]) {
    let (ok, out) = run(ns, args, Duration::from_secs(10));
    assert!(ok, "{args:?}: {out}");
}

fn stop(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    if !wait_for(Duration::from_secs(5), || {
        child.try_wait().ok().flatten().is_some()
    }) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Namespaces and processes of one run; dropping it stops them (by PID) and deletes them.
struct Lab {
    namespaces: Vec<String>,
    children: Vec<Child>,
}

impl Lab {
    fn ns(&mut self, name: &str) -> String {
        let full = format!("iscsv-{}-{name}", std::process::id());
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
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            stop(c);
        }
        for ns in &self.namespaces {
            let (_, pids) = run(
                None,
                &[&bin("ip"), "netns", "pids", ns],
                Duration::from_secs(5),
            );
            for p in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = run(
                None,
                &[&bin("ip"), "netns", "del", ns],
                Duration::from_secs(5),
            );
        }
    }
}

const REAL_CONF: &str = "\
authoritative;
ddns-update-style none;
default-lease-time 3600;
max-lease-time 7200;
ping-check false;
subnet 198.18.202.0 netmask 255.255.255.0 {
  range 198.18.202.10 198.18.202.109;
  option routers 198.18.202.1;
}
subnet 198.18.203.0 netmask 255.255.255.0 {
  range 198.18.203.10 198.18.203.19;
  host fixed { hardware ethernet 02:00:00:00:99:02; fixed-address 198.18.203.5; }
}
";

/// perfdhcp as a relay (giaddr 198.18.202.2): `n` exchanges with MACs from `base`.
fn perfdhcp(ns: &str, n: u32, base: &str) -> String {
    let n = n.to_string();
    let mac = format!("mac={base}");
    let (_, out) = run(
        Some(ns),
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
            &n,
            "-n",
            &n,
            "-p",
            "15",
            "-W",
            "2000000",
            "-g",
            "single",
            "-b",
            &mac,
            "198.18.202.1",
        ],
        Duration::from_secs(60),
    );
    out
}

/// Active addresses in the file, last entry per address (counted here without leased_isc).
fn active_in_file(path: &Path) -> BTreeSet<Ipv4Addr> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut state: std::collections::BTreeMap<Ipv4Addr, bool> = Default::default();
    let mut cur: Option<Ipv4Addr> = None;
    for l in text.lines() {
        let l = l.trim();
        if let Some(rest) = l.strip_prefix("lease ") {
            cur = rest.trim_end_matches('{').trim().parse().ok();
            if let Some(ip) = cur {
                state.insert(ip, false);
            }
        } else if l == "binding state active;"
            && let Some(ip) = cur
        {
            state.insert(ip, true);
        } else if l == "}" {
            cur = None;
        }
    }
    state
        .into_iter()
        .filter(|(_, a)| *a)
        .map(|(ip, _)| ip)
        .collect()
}

#[test]
fn isc_serve_matches_a_real_dhcpd() {
    if !gate(
        "isc_serve_matches_a_real_dhcpd",
        &["ip", "dhcpd", "perfdhcp", "timeout"],
    ) {
        return;
    }
    let dir = tempfile::Builder::new().prefix("iscsv.").tempdir().unwrap();
    let mut lab = Lab {
        namespaces: Vec::new(),
        children: Vec::new(),
    };
    let srv = lab.ns("srv");
    let prf = lab.ns("prf");
    must(
        None,
        &[
            &bin("ip"),
            "link",
            "add",
            "p0",
            "netns",
            &prf,
            "type",
            "veth",
            "peer",
            "name",
            "s0",
            "netns",
            &srv,
        ],
    );
    must(
        Some(&srv),
        &["ip", "addr", "add", "198.18.202.1/24", "dev", "s0"],
    );
    must(
        Some(&prf),
        &["ip", "addr", "add", "198.18.202.2/24", "dev", "p0"],
    );
    must(Some(&srv), &["ip", "link", "set", "s0", "up"]);
    must(Some(&prf), &["ip", "link", "set", "p0", "up"]);

    let conf = dir.path().join("dhcpd.conf");
    let leases = dir.path().join("dhcpd.leases");
    let dlog = dir.path().join("dhcpd.log");
    std::fs::write(&conf, REAL_CONF).unwrap();
    std::fs::write(&leases, "").unwrap();
    let out = std::fs::File::create(&dlog).unwrap();
    lab.children.push(
        Command::new(bin("ip"))
            .args([
                "netns",
                "exec",
                &srv,
                &bin("dhcpd"),
                "-4",
                "-f",
                "-d",
                "-cf",
            ])
            .arg(&conf)
            .arg("-lf")
            .arg(&leases)
            .arg("-pf")
            .arg(dir.path().join("dhcpd.pid"))
            .arg("s0")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(&dlog).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(15), || log()
            .contains("Server starting service")
            || log().contains("Sending on   Socket/fallback")),
        "dhcpd did not start:\n{}",
        log()
    );

    // leased isc serve reads the files dhcpd is writing (loopback of the root namespace).
    let (mut api, port) = start(&conf, &leases, &dir.path().join("isc.log"));
    let active = |port: u16| {
        json(port, "/counts")["ip_counts"]["active"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(active(port), 0);

    for (round, base) in ["02:00:00:01:00:00", "02:00:00:02:00:00"]
        .iter()
        .enumerate()
    {
        let pout = perfdhcp(&prf, 20, base);
        let in_file = || active_in_file(&leases);
        assert!(
            wait_for(Duration::from_secs(10), || !in_file().is_empty()),
            "round {round}: no active lease in the file:\n{pout}\n{}",
            log()
        );
        // The API converges on what the file holds (dhcpd may still be appending).
        let ok = wait_for(Duration::from_secs(15), || {
            active(port) == in_file().len() as u64
        });
        let want = in_file();
        assert!(
            ok,
            "round {round}: API {} vs file {}",
            active(port),
            want.len()
        );
        let s = json(port, "/subnets/198.18.202.0");
        let listed: BTreeSet<Ipv4Addr> = s["leases"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, l)| l["binding-state"] == "active")
            .map(|(ip, _)| ip.parse().unwrap())
            .collect();
        assert_eq!(listed, want, "round {round}: the same addresses");
        assert_eq!(s["ips"]["total"], 100);
        assert_eq!(
            s["ips"]["unused"].as_u64().unwrap(),
            100 - want.len() as u64
        );
        eprintln!("round {round}: {} active leases, API agrees", want.len());
    }
    let c = json(port, "/counts");
    assert_eq!(c["ip_counts"]["total"], 110);
    assert_eq!(c["ip_counts"]["static"], 1);
    api.term();
}
