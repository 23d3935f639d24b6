//! Rogue DHCP server detection, end to end (issue 8): two dnsmasq instances on the served link
//! answer a client's DISCOVERs besides leased. The one not whitelisted is reported once as
//! `FOREIGN-DHCP-SERVER server_ip=… mac=… iface=…`; the whitelisted one and leased itself never
//! are.
//!
//! Topology (its own): `srv` ns (leased on `<tag>s`, 198.18.252.1/24) ⇄ veth ⇄ `lan` ns (`<tag>c`,
//! no address) with three macvlans on it, each moved into its own namespace: `r1` (dnsmasq,
//! .2), `r2` (dnsmasq, .3, whitelisted) and `cl` (the client, `leased probe`). Root only: skips
//! with a reason otherwise, and fails instead when `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Net {
    tag: String,
    children: Vec<Child>,
}

const ROLES: [&str; 5] = ["srv", "lan", "r1", "r2", "cl"];

impl Net {
    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.tag)
    }

    fn new(suffix: &str) -> Net {
        let net = Net {
            tag: format!("lr{}{suffix}", std::process::id()),
            children: Vec::new(),
        };
        for role in ROLES {
            let ns = net.ns(role);
            sh(&["ip", "netns", "add", &ns]);
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        let (s, c) = (format!("{}s", net.tag), format!("{}c", net.tag));
        sh(&["ip", "link", "add", &s, "type", "veth", "peer", "name", &c]);
        sh(&["ip", "link", "set", &s, "netns", &net.ns("srv")]);
        sh(&["ip", "link", "set", &c, "netns", &net.ns("lan")]);
        sh(&[
            "ip",
            "-n",
            &net.ns("srv"),
            "addr",
            "add",
            "198.18.252.1/24",
            "dev",
            &s,
        ]);
        sh(&["ip", "-n", &net.ns("srv"), "link", "set", &s, "up"]);
        sh(&["ip", "-n", &net.ns("lan"), "link", "set", &c, "up"]);
        for (role, addr) in [
            ("r1", Some("198.18.252.2/24")),
            ("r2", Some("198.18.252.3/24")),
            ("cl", None),
        ] {
            let m = format!("{}{role}", net.tag);
            let lan = net.ns("lan");
            sh(&[
                "ip", "-n", &lan, "link", "add", &m, "link", &c, "type", "macvlan", "mode",
                "bridge",
            ]);
            sh(&["ip", "-n", &lan, "link", "set", &m, "netns", &net.ns(role)]);
            if let Some(a) = addr {
                sh(&["ip", "-n", &net.ns(role), "addr", "add", a, "dev", &m]);
            }
            sh(&["ip", "-n", &net.ns(role), "link", "set", &m, "up"]);
        }
        net
    }

    fn spawn(&mut self, role: &str, argv: &[&str], log: &Path) -> u32 {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(role)])
            .args(argv)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
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
        for role in ROLES {
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

fn gate() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let mut missing = Vec::new();
    if !nix::unistd::Uid::effective().is_root() {
        missing.push("root (network namespaces)".to_string());
    }
    for bin in ["ip", "dnsmasq"] {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(bin).exists());
        if !found {
            missing.push(bin.to_string());
        }
    }
    if missing.is_empty() {
        return true;
    }
    let reason = format!(
        "SKIP: rogue-server system test needs {}",
        missing.join(", ")
    );
    assert!(!ci, "{reason} (CI=true: nothing may skip)");
    println!("{reason}");
    false
}

fn wait_for(path: &Path, needle: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::fs::read_to_string(path).is_ok_and(|s| s.contains(needle)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The lab with leased serving (and watching) the link, and both dnsmasq instances running.
fn start(suffix: &str, extra: &str) -> (Net, tempfile::TempDir, std::path::PathBuf, u32) {
    let mut net = Net::new(suffix);
    let dir = tempfile::tempdir().unwrap();
    let srv_if = format!("{}s", net.tag);
    let config = format!(
        r#"[server]
authoritative = true
lease_time = 300
[store]
path = "{store}"
[[subnets]]
network = "198.18.252.0/24"
interface = "{srv_if}"
routers = ["198.18.252.1"]
pools = ["198.18.252.100-198.18.252.120"]
[rogue_servers]
whitelist = ["198.18.252.3"]
{extra}"#,
        store = dir.path().join("leases.db").display(),
        extra = extra,
    );
    let cfg = dir.path().join("leased.toml");
    std::fs::write(&cfg, config).unwrap();
    let log = dir.path().join("server.log");
    let leased = env!("CARGO_BIN_EXE_leased");
    let server_pid = net.spawn("srv", &[leased, "serve", "-c", cfg.to_str().unwrap()], &log);
    assert!(
        wait_for(
            &log,
            "watching for foreign DHCP servers",
            Duration::from_secs(10)
        ),
        "leased did not start watching: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    for (role, range) in [
        ("r1", "198.18.252.150,198.18.252.160,120"),
        ("r2", "198.18.252.170,198.18.252.180,120"),
    ] {
        let iface = format!("{}{role}", net.tag);
        let leases = dir.path().join(format!("{role}.leases"));
        let pidf = dir.path().join(format!("{role}.pid"));
        net.spawn(
            role,
            &[
                "dnsmasq",
                "--no-daemon",
                "--conf-file=/dev/null",
                "--port=0",
                "--user=root",
                "--bind-interfaces",
                &format!("--interface={iface}"),
                &format!("--dhcp-range={range}"),
                "--dhcp-authoritative",
                "--log-facility=-",
                "--log-dhcp",
                "--no-ping",
                &format!("--dhcp-leasefile={}", leases.display()),
                &format!("--pid-file={}", pidf.display()),
            ],
            &dir.path().join(format!("{role}.log")),
        );
    }
    std::thread::sleep(Duration::from_millis(800));

    (net, dir, log, server_pid)
}

/// Stops leased and checks what it logged: exactly one FOREIGN-DHCP-SERVER line, for the rogue
/// (.2) on our interface; never the whitelisted server (.3) nor leased itself (.1).
fn stop_and_check(net: &Net, dir: &Path, log: &Path, server_pid: u32) {
    sh(&["kill", &server_pid.to_string()]);
    assert!(wait_for(
        log,
        "counters at shutdown",
        Duration::from_secs(10)
    ));
    let text = std::fs::read_to_string(log).unwrap();
    let foreign: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("FOREIGN-DHCP-SERVER"))
        .collect();
    println!("{foreign:#?}");
    assert_eq!(
        foreign.len(),
        1,
        "exactly the one rogue, once: {foreign:#?}"
    );
    let line = foreign[0];
    assert!(line.contains(&format!("iface={}s", net.tag)), "{line}");
    assert!(line.contains("mac="), "{line}");
    assert!(
        !text.contains("server_ip=198.18.252.3"),
        "whitelisted server flagged"
    );
    assert!(
        !text.contains("server_ip=198.18.252.1 "),
        "leased flagged itself"
    );
    let counters = text
        .lines()
        .rev()
        .find(|l| l.contains("counters at shutdown"))
        .unwrap();
    assert!(counters.contains("foreign_dhcp_servers=1"), "{counters}");
    // The whitelisted server did answer (so it was seen and let pass, not missed).
    let r2 = std::fs::read_to_string(dir.join("r2.log")).unwrap_or_default();
    assert!(
        r2.contains("DHCPOFFER"),
        "whitelisted dnsmasq never offered: {r2}"
    );
}

#[test]
fn passive_watch_reports_a_foreign_server_once_whitelisted_and_own_never() {
    if !gate() {
        return;
    }
    let (net, dir, log, server_pid) = start("p", "");
    let leased = env!("CARGO_BIN_EXE_leased");
    // A few DISCOVERs from the client: every server on the link answers each one.
    let cl_if = format!("{}cl", net.tag);
    for _ in 0..3 {
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.ns("cl"),
                leased,
                "probe",
                "-i",
                &cl_if,
            ])
            .args(["--discover-only", "--timeout", "2", "--json"])
            .output();
        if wait_for(
            &log,
            "FOREIGN-DHCP-SERVER server_ip=198.18.252.2 ",
            Duration::from_secs(1),
        ) {
            break;
        }
    }
    let started = Instant::now();
    assert!(
        wait_for(
            &log,
            "FOREIGN-DHCP-SERVER server_ip=198.18.252.2 ",
            Duration::from_secs(5)
        ),
        "rogue not reported: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    println!("reported within {:?} of the last probe", started.elapsed());
    // More traffic: still one line for it.
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.ns("cl"),
            leased,
            "probe",
            "-i",
            &cl_if,
        ])
        .args(["--discover-only", "--timeout", "2"])
        .output();
    std::thread::sleep(Duration::from_millis(500));
    stop_and_check(&net, dir.path(), &log, server_pid);
}

#[test]
fn active_probe_finds_a_server_nobody_asked() {
    if !gate() {
        return;
    }
    // No client on the link at all: only leased's own DISCOVER (every second) makes the
    // servers speak, and leased never answers its own probe.
    let (net, dir, log, server_pid) = start(
        "a",
        "probe_interval = 1\n[api]\nlisten = \"127.0.0.1:8067\"\nkeys = [\"rogue-key-0123456789\"]\n",
    );
    assert!(
        wait_for(
            &log,
            "FOREIGN-DHCP-SERVER server_ip=198.18.252.2 ",
            Duration::from_secs(6)
        ),
        "rogue not found by the active probe: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("DISCOVER mac=02:6c:65:61:73:64"),
        "leased answered its own probe"
    );
    // The API lists the rogue (only it) with first/last seen, behind the key.
    let api = |key: &str| {
        let out = Command::new("ip")
            .args(["netns", "exec", &net.ns("srv"), "curl", "-s", "-m", "5"])
            .args(["-H", &format!("X-Api-Key: {key}"), "-w", "\n%{http_code}"])
            .arg("http://127.0.0.1:8067/rogue_servers")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or_default();
        (body.to_string(), code.to_string())
    };
    assert_eq!(api("wrong").1, "401", "no key check");
    let (body, code) = api("rogue-key-0123456789");
    assert_eq!(code, "200", "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    println!("/rogue_servers: {list}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let r = &list[0];
    assert_eq!(r["server_ip"], "198.18.252.2");
    assert_eq!(r["iface"], format!("{}s", net.tag));
    let (first, last) = (
        r["first_seen"].as_u64().unwrap(),
        r["last_seen"].as_u64().unwrap(),
    );
    assert!(first > 0 && last >= first, "{r}");
    assert!(r["replies"].as_u64().unwrap() >= 1, "{r}");
    stop_and_check(&net, dir.path(), &log, server_pid);
}
