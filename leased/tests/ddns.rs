//! DDNS end to end against a real BIND 9: `named` started by the test in the lab's server
//! namespace (its own config directory, listening only on the lab's 198.18.x address, a high
//! port), a TSIG key (hmac-sha256), a forward and a reverse zone that accept updates signed
//! with it. Real udhcpc clients take leases from `leased serve`; `dig` checks what BIND holds:
//!
//! - A and PTR appear after a lease (option 81 `-F` and option 12), and go after RELEASE;
//! - they go after expiry (a client killed without releasing, short leases);
//! - a second client claiming a name already held is refused by the DHCID rule (RFC 4703);
//! - with BIND stopped, a lease taken meanwhile (and a leased restart in between) still lands
//!   once BIND is back: the durable queue.
//!
//! Root, udhcpc, named and dig are required (else `SKIP: …`; a failure under `CI=true`).
#![allow(clippy::useless_vec, clippy::unwrap_used)]

#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use support::lab::CLI_IF;
use support::proc::{Proc, bin, run};
use support::{Cfg, Lab, Udhcpc};

/// The port BIND listens on (a high one: nothing else on the lab's address uses it).
const PORT: u16 = 53053;
/// The TSIG key (base64 of 32 fixed bytes; a test key, never a real one).
const SECRET: &str = "bGVhc2VkLWRkbnMtdGVzdC1rZXktMzItYnl0ZXMhISE=";
const ZONE: &str = "example.test";
/// Leases short enough to watch one expire.
const LEASE: u32 = 12;

struct Bind {
    proc: Option<Proc>,
    dir: std::path::PathBuf,
    ns: String,
    ip: Ipv4Addr,
    starts: u32,
}

impl Bind {
    fn new(lab: &Lab) -> Bind {
        let dir = lab.path("bind");
        std::fs::create_dir_all(&dir).unwrap();
        let ip = lab.srv_ip;
        let rev = reverse_zone(lab);
        let conf = format!(
            r#"options {{
  directory "{d}";
  pid-file "{d}/named.pid";
  session-keyfile "{d}/session.key";
  managed-keys-directory "{d}";
  listen-on port {PORT} {{ {ip}; }};
  listen-on-v6 {{ none; }};
  recursion no;
  dnssec-validation no;
  allow-query {{ any; }};
  notify no;
}};
controls {{ }};
key "ddns-key" {{ algorithm hmac-sha256; secret "{SECRET}"; }};
zone "{ZONE}" {{ type primary; file "{d}/fwd.db"; allow-update {{ key ddns-key; }}; }};
zone "{rev}" {{ type primary; file "{d}/rev.db"; allow-update {{ key ddns-key; }}; }};
"#,
            d = dir.display()
        );
        std::fs::write(dir.join("named.conf"), conf).unwrap();
        let soa = |origin: &str| {
            format!(
                "$ORIGIN {origin}.\n$TTL 300\n@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 3600 600 86400 60\n\
                 @ IN NS ns.{ZONE}.\n"
            )
        };
        std::fs::write(dir.join("fwd.db"), format!("{}ns IN A {ip}\n", soa(ZONE))).unwrap();
        std::fs::write(dir.join("rev.db"), soa(&rev)).unwrap();
        let mut b = Bind {
            proc: None,
            dir,
            ns: lab.srv_ns.clone(),
            ip,
            starts: 0,
        };
        b.start();
        b
    }

    fn start(&mut self) {
        self.starts += 1;
        let out = self.dir.join(format!("named.{}.log", self.starts));
        let argv = argv![
            bin("named"),
            "-g",
            "-4",
            "-n",
            "1",
            "-c",
            self.dir.join("named.conf").display()
        ];
        self.proc = Some(Proc::spawn("named", Some(&self.ns), &argv, &out, &[]));
        let t0 = Instant::now();
        while dig(self, "SOA", ZONE).is_empty() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "named did not answer\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops named by its PID (SIGTERM, then SIGKILL).
    fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(10));
        }
    }

    fn log(&self) -> String {
        self.proc.as_ref().map(|p| p.output()).unwrap_or_default()
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `d.c.b.in-addr.arpa` of the lab's /24.
fn reverse_zone(lab: &Lab) -> String {
    let [a, b, c, _] = lab.net.network().octets();
    format!("{c}.{b}.{a}.in-addr.arpa")
}

fn reverse_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

/// `dig +short` of `name`'s `rtype` records at BIND, one answer a line (empty: none).
fn dig(b: &Bind, rtype: &str, name: &str) -> String {
    let out = run(
        Some(&b.ns),
        &argv![
            bin("dig"),
            format!("@{}", b.ip),
            "-p",
            PORT,
            "+short",
            "+time=1",
            "+tries=1",
            rtype,
            name
        ],
        Duration::from_secs(5),
    );
    out.stdout.trim().to_string()
}

/// Waits (bounded) until `dig` shows `want` for `name`'s `rtype` (empty `want`: no records).
fn wait_dig(
    b: &Bind,
    rtype: &str,
    name: &str,
    want: &str,
    timeout: Duration,
    why: &dyn Fn() -> String,
) {
    let t0 = Instant::now();
    loop {
        let got = dig(b, rtype, name);
        if got == want {
            return;
        }
        assert!(
            t0.elapsed() < timeout,
            "{rtype} {name}: want {want:?}, BIND says {got:?}\n{}",
            why()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A udhcpc that asks for `host` by option 12 and option 81 (`-F`), releases on exit (`-R`),
/// and stays to renew; returns it bound and its address.
fn client(
    lab: &Lab,
    ns: &str,
    iface: &str,
    host: &str,
    log: &dyn Fn() -> String,
) -> (Udhcpc, Ipv4Addr) {
    let mut u = Udhcpc::new(lab, ns, iface, host, Some(host));
    u.start(true, false, &["-R", "-F", host]);
    let ip =
        u.c.wait_event(0, &["bound"], Duration::from_secs(20))
            .and_then(|e| e.ip())
            .unwrap_or_else(|| panic!("udhcpc {host} got no lease\n{}\n{}", u.c.diag(), log()));
    (u, ip)
}

#[test]
fn leases_reach_bind_and_leave_it_under_the_dhcid_rules() {
    if !gate!("udhcpc", "named", "dig") {
        return;
    }
    let lab = Lab::new();
    let mut bind = Bind::new(&lab);
    let rev = reverse_zone(&lab);
    let mut cfg = Cfg::for_lab(&lab);
    cfg.lease_time = LEASE;
    cfg.extra = format!(
        "\n[ddns]\nservers = [\"{}:{PORT}\"]\nkey_name = \"ddns-key\"\nkey_secret = \"{SECRET}\"\n\
         forward_zone = \"{ZONE}\"\nreverse_zone = \"{rev}\"\nttl = 60\ntimeout = 1\nmax_backoff = 2\n",
        lab.srv_ip
    );
    let mut server = lab.start_server(&cfg.render());
    let server_log = |s: &support::Server<'_>| format!("--- leased\n{}", s.all_logs());
    let t = Duration::from_secs(15);

    // A lease: A, DHCID and PTR.
    let (mut alpha, alpha_ip) = client(&lab, &lab.cli_ns, CLI_IF, "alpha", &|| server_log(&server));
    let why = || format!("{}\n--- named\n{}", server_log(&server), bind.log());
    wait_dig(
        &bind,
        "A",
        "alpha.example.test",
        &alpha_ip.to_string(),
        t,
        &why,
    );
    wait_dig(
        &bind,
        "PTR",
        &reverse_name(alpha_ip),
        "alpha.example.test.",
        t,
        &why,
    );
    assert!(
        !dig(&bind, "DHCID", "alpha.example.test").is_empty(),
        "a DHCID record beside the A"
    );

    // The same name from another client: refused by its DHCID, the first keeps it.
    let other = lab.add_client();
    let (mut thief, thief_ip) = client(&lab, &other.ns, &other.iface, "alpha", &|| {
        server_log(&server)
    });
    assert_ne!(thief_ip, alpha_ip);
    server
        .wait_log(t, |l| {
            l.contains("DDNS conflict") && l.contains(&thief_ip.to_string())
        })
        .unwrap_or_else(|| panic!("no conflict logged\n{}", why()));
    assert_eq!(dig(&bind, "A", "alpha.example.test"), alpha_ip.to_string());
    assert_eq!(dig(&bind, "PTR", &reverse_name(thief_ip)), "");
    // Its release removes nothing of the first client's.
    thief.c.stop();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(dig(&bind, "A", "alpha.example.test"), alpha_ip.to_string());

    // RELEASE: gone.
    alpha.c.stop();
    wait_dig(&bind, "A", "alpha.example.test", "", t, &why);
    wait_dig(&bind, "PTR", &reverse_name(alpha_ip), "", t, &why);
    assert_eq!(dig(&bind, "DHCID", "alpha.example.test"), "");

    // Expiry: a client that vanishes without a RELEASE.
    let (mut beta, beta_ip) = client(&lab, &lab.cli_ns, CLI_IF, "beta", &|| server_log(&server));
    wait_dig(
        &bind,
        "A",
        "beta.example.test",
        &beta_ip.to_string(),
        t,
        &why,
    );
    if let Some(p) = beta.c.proc.as_mut() {
        p.kill9();
    }
    let lapse = Duration::from_secs(u64::from(LEASE) + 15);
    wait_dig(&bind, "A", "beta.example.test", "", lapse, &why);
    wait_dig(&bind, "PTR", &reverse_name(beta_ip), "", t, &why);

    // BIND down: a lease taken meanwhile waits in the queue, across a leased restart too.
    bind.stop();
    let (mut gamma, gamma_ip) = client(&lab, &lab.cli_ns, CLI_IF, "gamma", &|| server_log(&server));
    server
        .wait_log(t, |l| l.contains("DDNS server did not answer"))
        .unwrap_or_else(|| panic!("no retry logged\n{}", server_log(&server)));
    server.term();
    let queue = lab.path("leases.db.ddns");
    assert!(
        Path::new(&queue).exists()
            && std::fs::read_to_string(&queue)
                .unwrap()
                .contains("gamma.example.test"),
        "the update is in the durable queue"
    );
    server.start();
    bind.start();
    let why = || format!("{}\n--- named\n{}", server_log(&server), bind.log());
    wait_dig(
        &bind,
        "A",
        "gamma.example.test",
        &gamma_ip.to_string(),
        Duration::from_secs(30),
        &why,
    );
    wait_dig(
        &bind,
        "PTR",
        &reverse_name(gamma_ip),
        "gamma.example.test.",
        t,
        &why,
    );
    gamma.c.stop();
    wait_dig(&bind, "A", "gamma.example.test", "", t, &why);
    server.term();
}
