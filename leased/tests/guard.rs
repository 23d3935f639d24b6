//! Starvation defence, end to end (issue 8): a flood client in one namespace sends DISCOVERs
//! from random MACs as fast as it can while a legitimate client in another namespace asks for a
//! lease. With `[limits]` configured the legitimate client is served within seconds, the
//! attacker holds at most `max_offers_in_flight_per_relay` addresses of its link's pool, and the
//! server's counters add up: every DISCOVER received was either offered or dropped by a named
//! limit.
//!
//! Topology (its own, so both links are real links into one server namespace):
//! `att` ns ⇄ (`ga0`/`gA0`) ⇄ `srv` ns ⇄ (`gb0`/`gB0`) ⇄ `good` ns, on 198.18.250.0/24 and
//! 198.18.251.0/24. Root only: skips with a reason otherwise, and fails instead when `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Namespaces and processes of one run; dropping it stops the processes by PID and deletes the
/// namespaces.
struct Net {
    tag: String,
    children: Vec<Child>,
}

impl Net {
    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.tag)
    }

    fn new() -> Net {
        // Unique per test in this process: the tests run in parallel.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("lg{}x{n}", std::process::id());
        let net = Net {
            tag,
            children: Vec::new(),
        };
        let (srv, att, good) = (net.ns("srv"), net.ns("att"), net.ns("good"));
        for ns in [&srv, &att, &good] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let links = [("a", &att, "198.18.250"), ("b", &good, "198.18.251")];
        for (l, peer, net3) in links {
            let (s, c) = (format!("{}{l}s", net.tag), format!("{}{l}c", net.tag));
            sh(&["ip", "link", "add", &s, "type", "veth", "peer", "name", &c]);
            sh(&["ip", "link", "set", &s, "netns", &srv]);
            sh(&["ip", "link", "set", &c, "netns", peer]);
            sh(&[
                "ip",
                "-n",
                &srv,
                "addr",
                "add",
                &format!("{net3}.1/24"),
                "dev",
                &s,
            ]);
            sh(&["ip", "-n", &srv, "link", "set", &s, "up"]);
            sh(&["ip", "-n", peer, "link", "set", &c, "up"]);
        }
        net
    }

    fn iface(&self, link: &str, side: &str) -> String {
        format!("{}{link}{side}", self.tag)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for role in ["srv", "att", "good"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(role)])
                .status();
        }
    }
}

fn sh(argv: &[&str]) {
    let st = Command::new(argv[0])
        .args(&argv[1..])
        .status()
        .expect(argv[0]);
    assert!(st.success(), "{argv:?} failed");
}

fn in_ns(ns: &str, argv: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(argv);
    c
}

/// Root and the tools, or a printed reason to skip (a failure under CI).
fn gate() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let mut missing = Vec::new();
    if !nix::unistd::Uid::effective().is_root() {
        missing.push("root (network namespaces)".to_string());
    }
    for bin in ["ip", "python3"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .stdout(Stdio::null())
            .status()
            .map_or(true, |s| !s.success())
        {
            missing.push(bin.to_string());
        }
    }
    if missing.is_empty() {
        return true;
    }
    let reason = format!("SKIP: guard system test needs {}", missing.join(", "));
    assert!(!ci, "{reason} (CI=true: nothing may skip)");
    println!("{reason}");
    false
}

/// The flood client: DISCOVERs with random locally administered MACs, broadcast on `iface`,
/// `count` of them or `secs` seconds, whichever comes first. Prints how many it sent.
const FLOOD: &str = r#"
import os, random, socket, struct, sys, time
iface, count, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
s.bind(("0.0.0.0", 68))
sent, end = 0, time.monotonic() + secs
while sent < count and time.monotonic() < end:
    mac = bytes([0x02]) + os.urandom(5)
    hdr = struct.pack("!BBBBIHHIIII", 1, 1, 6, 0, random.getrandbits(32), 0, 0x8000, 0, 0, 0, 0)
    pkt = hdr + mac + bytes(10) + bytes(192) + bytes([99, 130, 83, 99, 53, 1, 1, 255])
    s.sendto(pkt.ljust(300, b"\0"), ("255.255.255.255", 67))
    sent += 1
    if sent % 50 == 0:
        time.sleep(0.005)
print(sent)
"#;

/// `key=value` pairs of the server's "counters at shutdown" line.
fn shutdown_counters(log: &str) -> BTreeMap<String, u64> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("counters at shutdown"))
        .unwrap_or_else(|| panic!("no counters line in the server log:\n{log}"));
    line.split_whitespace()
        .map(|w| w.trim_start_matches("counters="))
        .filter_map(|w| w.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

const PER_LINK_CAP: u64 = 8;

/// Floods in this file run one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn flood_on_one_link_does_not_starve_the_other_nor_exhaust_its_pool() {
    if !gate() {
        return;
    }
    let _one_flood_at_a_time = serial();
    let mut net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let (att_if, good_if) = (net.iface("a", "s"), net.iface("b", "s"));
    let config = format!(
        r#"[server]
authoritative = true
lease_time = 300
offer_hold = 120
[store]
path = "{store}"
[[subnets]]
network = "198.18.250.0/24"
interface = "{att_if}"
routers = ["198.18.250.1"]
pools = ["198.18.250.10-198.18.250.59"]
[[subnets]]
network = "198.18.251.0/24"
interface = "{good_if}"
routers = ["198.18.251.1"]
pools = ["198.18.251.10-198.18.251.59"]
[limits]
per_mac = {{ rate = 1, burst = 5 }}
per_relay = {{ rate = 20, burst = 40 }}
max_offers_in_flight = 100
max_offers_in_flight_per_relay = {PER_LINK_CAP}
"#,
        store = dir.path().join("leases.db").display()
    );
    let cfg_path = dir.path().join("leased.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let log_path = dir.path().join("server.log");
    let server = in_ns(
        &net.ns("srv"),
        &[
            env!("CARGO_BIN_EXE_leased"),
            "serve",
            "-c",
            cfg_path.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log_path).unwrap())
    .spawn()
    .unwrap();
    let server_pid = server.id();
    net.children.push(server);
    wait_for(&log_path, "serving", Duration::from_secs(10));

    // The flood: at most 3000 DISCOVERs within 8 s, in the background.
    let flood = in_ns(
        &net.ns("att"),
        &["python3", "-c", FLOOD, &net.iface("a", "c"), "3000", "8"],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(700));

    // The legitimate client on the other link, during the flood.
    let started = Instant::now();
    let probe = in_ns(
        &net.ns("good"),
        &[
            env!("CARGO_BIN_EXE_leased"),
            "probe",
            "-i",
            &net.iface("b", "c"),
            "--mac",
            "02:00:00:00:be:ef",
            "--timeout",
            "3",
            "--json",
        ],
    )
    .output()
    .unwrap();
    let took = started.elapsed();
    let probe_out = String::from_utf8_lossy(&probe.stdout).to_string();
    assert!(
        probe.status.success() && probe_out.contains("198.18.251."),
        "legitimate client got no lease during the flood: {probe_out} {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(took < Duration::from_secs(5), "lease took {took:?}");

    // And on the flooded link itself, a real client still gets through once the flood stops?
    // No: its offer slots are held for offer_hold by design. What matters is that the attacker
    // holds at most the cap; checked below from the counters.
    let flood_out = flood.wait_with_output().unwrap();
    let flood_sent: u64 = String::from_utf8_lossy(&flood_out.stdout)
        .trim()
        .parse()
        .expect("flood count");
    assert!(flood_sent > 200, "the flood sent only {flood_sent}");
    std::thread::sleep(Duration::from_millis(500));

    // Stop the server and read its counters.
    sh(&["kill", &server_pid.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = String::new();
    while Instant::now() < deadline {
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("counters at shutdown") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let c = shutdown_counters(&log);
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    println!("flood sent {flood_sent}; server counters: {c:?}; probe took {took:?}");

    let received = get("received.DISCOVER");
    let offered = get("sent.OFFER");
    let dropped: u64 = c
        .iter()
        .filter(|(k, _)| k.starts_with("dropped."))
        .map(|(_, v)| v)
        .sum();
    // Every DISCOVER is accounted for: offered, or dropped with a reason (queue overload
    // included, if the kernel delivered faster than the engine drained).
    assert_eq!(received, offered + dropped, "counters do not add up: {c:?}");
    // The legitimate client's one DISCOVER plus the flood's (some may be lost in the kernel).
    assert!(
        received <= flood_sent + 3 && received > flood_sent / 2,
        "{c:?}"
    );
    // The attacker holds at most the per-link cap of its 50-address pool.
    assert!(
        offered <= PER_LINK_CAP + 2,
        "attacker got {offered} offers: {c:?}"
    );
    assert!(get("dropped.rate_relay") > 0, "{c:?}");
    assert_eq!(get("sent.ACK"), 1, "{c:?}");
    let limit_lines = log
        .lines()
        .filter(|l| l.contains("LIMIT request dropped"))
        .count();
    assert!(
        (1..=20).contains(&limit_lines),
        "drop log lines must be rate-limited: {limit_lines}"
    );
}

fn wait_for(path: &Path, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::fs::read_to_string(path).is_ok_and(|s| s.contains(needle)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "server did not log {needle:?} in {within:?}:\n{}",
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

/// A relayed flood at a steady pace: `count` DISCOVERs unicast to `server:67`, each from a new
/// random MAC, through a new random giaddr in 198.19.0.0/16 with a new random circuit-id and
/// remote-id, so that every `[limits]` table (per MAC, circuit, remote-id and relay) sees a new
/// key per packet. `pps` per second at most; prints how many it sent.
const RELAYED_FLOOD: &str = r#"
import os, random, socket, struct, sys, time
server, count, pps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent, start = 0, time.monotonic()
while sent < count:
    mac = bytes([0x02]) + os.urandom(5)
    giaddr = bytes([198, 19]) + os.urandom(2)
    hdr = struct.pack("!BBBBIHHII", 1, 1, 6, 1, random.getrandbits(32), 0, 0, 0, 0)
    hdr += bytes(4) + giaddr
    o82 = bytes([1, 4]) + os.urandom(4) + bytes([2, 4]) + os.urandom(4)
    opts = bytes([99, 130, 83, 99, 53, 1, 1, 82, len(o82)]) + o82 + bytes([255])
    pkt = hdr + mac + bytes(10) + bytes(192) + opts
    s.sendto(pkt.ljust(300, b"\0"), (server, 67))
    sent += 1
    if sent % 100 == 0:
        ahead = sent / pps - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
print(sent)
"#;

/// Server CPU time (user + system) in seconds, from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// One run of the relayed flood against a server with `limits` (a `[limits]` body, or "");
/// returns (server CPU seconds per packet that reached the engine, packets that did, how long
/// a client on the other link took to be served during the flood).
fn flood_run(limits: &str) -> (f64, u64, Duration) {
    let mut net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let (att_if, good_if) = (net.iface("a", "s"), net.iface("b", "s"));
    sh(&[
        "ip",
        "-n",
        &net.ns("att"),
        "addr",
        "add",
        "198.18.250.2/24",
        "dev",
        &net.iface("a", "c"),
    ]);
    // Replies to the random relays go back to the attacker's link (and die there).
    sh(&[
        "ip",
        "-n",
        &net.ns("srv"),
        "route",
        "add",
        "198.19.0.0/16",
        "via",
        "198.18.250.2",
    ]);
    let config = format!(
        r#"[server]
lease_time = 300
offer_hold = 120
[store]
path = "{store}"
[[subnets]]
network = "198.18.250.0/24"
interface = "{att_if}"
pools = ["198.18.250.10-198.18.250.59"]
[[subnets]]
network = "198.18.251.0/24"
interface = "{good_if}"
pools = ["198.18.251.10-198.18.251.59"]
[[subnets]]
network = "198.19.0.0/16"
pools = ["198.19.0.10-198.19.0.250"]
{limits}
"#,
        store = dir.path().join("leases.db").display()
    );
    let cfg_path = dir.path().join("leased.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let log_path = dir.path().join("server.log");
    let server = in_ns(
        &net.ns("srv"),
        &[
            env!("CARGO_BIN_EXE_leased"),
            "serve",
            "-c",
            cfg_path.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log_path).unwrap())
    .spawn()
    .unwrap();
    let pid = server.id();
    net.children.push(server);
    wait_for(&log_path, "serving", Duration::from_secs(10));

    let cpu0 = cpu_secs(pid);
    let flood = in_ns(
        &net.ns("att"),
        &[
            "python3",
            "-c",
            RELAYED_FLOOD,
            "198.18.250.1",
            &FLOOD_PACKETS.to_string(),
            "5000",
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    // Once the tables are full (65,536 keys at 5,000 a second: ~13 s), a real client.
    std::thread::sleep(Duration::from_secs(15));
    let started = Instant::now();
    let probe = in_ns(
        &net.ns("good"),
        &[
            env!("CARGO_BIN_EXE_leased"),
            "probe",
            "-i",
            &net.iface("b", "c"),
            "--mac",
            "02:00:00:00:be:ef",
            "--timeout",
            "5",
        ],
    )
    .output()
    .unwrap();
    let took = started.elapsed();
    assert!(
        probe.status.success(),
        "the real client was not served during the flood: {}",
        String::from_utf8_lossy(&probe.stdout)
    );
    let out = flood.wait_with_output().unwrap();
    let sent: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(sent, FLOOD_PACKETS);
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_secs(pid) - cpu0;

    sh(&["kill", &pid.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = String::new();
    while Instant::now() < deadline && !log.contains("counters at shutdown") {
        std::thread::sleep(Duration::from_millis(100));
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
    }
    let c = shutdown_counters(&log);
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    let reached = get("received.DISCOVER").saturating_sub(get("dropped.overload"));
    println!(
        "limits {:?}: cpu {cpu:.2} s for {reached} packets; client served in {took:?}; {c:?}",
        !limits.is_empty()
    );
    (cpu / reached.max(1) as f64, reached, took)
}

const FLOOD_PACKETS: u64 = 100_000;

#[test]
fn a_flood_with_every_limits_table_full_costs_no_more_than_no_limits() {
    if !gate() {
        return;
    }
    // The CPU comparison must not share the machine with the other flood.
    let _one_flood_at_a_time = serial();
    // Generous limits: every packet is a new key and passes, so both runs do the same work
    // apart from the tables, which hold 65,536 keys each and are full after the first 13 s.
    let limits = "[limits]\nper_mac = { rate = 1, burst = 5 }\n\
                  per_circuit_id = { rate = 1, burst = 5 }\n\
                  per_remote_id = { rate = 1, burst = 5 }\n\
                  per_relay = { rate = 1, burst = 5 }\n";
    let (off, reached_off, _) = flood_run("");
    let (on, reached_on, took) = flood_run(limits);
    assert!(
        reached_off > 70_000 && reached_on > 70_000,
        "the flood did not fill the tables: {reached_off} / {reached_on} packets reached the engine"
    );
    println!(
        "CPU per packet: limits off {:.1} µs, every table full {:.1} µs ({:.2}×)",
        off * 1e6,
        on * 1e6,
        on / off
    );
    assert!(
        on < 2.0 * off,
        "full limits tables cost {:.2}× the CPU of no limits",
        on / off
    );
    assert!(
        took < Duration::from_secs(1),
        "the real client took {took:?}"
    );
}
