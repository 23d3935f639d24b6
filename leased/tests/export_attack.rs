//! The billing export against an attacker, on a running `leased serve` (DHCP in test mode on
//! loopback, high ports, addresses in 198.18.0.0/15) and `leased export test`:
//! - the router endpoint under 64, then 256 concurrent bad passwords (each from its own
//!   loopback source address, so that only the concurrency bound stands in the way): the
//!   server's peak RSS stays under 300 MiB and a DORA on loopback during the attack is
//!   answered in under 20 ms (median); refusals are 503 with `Retry-After`;
//! - one source failing again and again is refused with 429 and `Retry-After`;
//! - a wrong secret for a known user and any secret for an unknown one cost the same (medians
//!   within 3×), so user names cannot be enumerated by timing;
//! - `leased export test` works in a fresh private directory and does not follow a symlink
//!   planted at the name it used to use.
//!
//! Every loop is bounded in count and time; processes are stopped by PID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "ops/common.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Proc, dora, free_tcp, free_udp, wait_for};

/// Standard base64 of `input` (for HTTP Basic).
fn b64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One answer of the router endpoint.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    took: Duration,
}

/// One GET of the router endpoint from `src` (any loopback address) with HTTP Basic. A
/// connection the server closes without an answer (its `[api] max_connections` gate) is
/// status 0.
fn ask(src: Ipv4Addr, api: u16, user: &str, pass: &str) -> Answer {
    let t0 = Instant::now();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from((src, 0)).into()).unwrap();
    sock.connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, api)).into(),
        Duration::from_secs(10),
    )
    .unwrap();
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = b64(format!("{user}:{pass}").as_bytes());
    let _ = write!(
        s,
        "GET /api/dhcp_assignments?ip_address=198.18.250.9&leased_mac_address=0a:00:3e:b1:45:2b&expired=1 \
         HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
    );
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let took = t0.elapsed();
    let head = raw.split("\r\n\r\n").next().unwrap_or("");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let retry_after = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("retry-after")
            .then(|| v.trim().parse().ok())?
    });
    Answer {
        status,
        retry_after,
        took,
    }
}

/// A loopback source address of its own for the `n`-th request of a phase.
fn source(phase: u8, n: u32) -> Ipv4Addr {
    let [_, _, hi, lo] = n.to_be_bytes();
    Ipv4Addr::new(127, 10 + phase, hi, lo % 250 + 1)
}

fn proc_status(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One DORA on loopback, timed.
fn timed_dora(dhcp: u16, mac: [u8; 6], xid: u32) -> Duration {
    let t0 = Instant::now();
    dora(dhcp, mac, xid, "probe");
    t0.elapsed()
}

struct Phase {
    statuses: Vec<Answer>,
    dhcp: Vec<Duration>,
    rss_kib: u64,
}

/// `concurrency` attackers, each keeping one bad-password request in flight (a short pause
/// after an instant refusal, so that the test measures the checks rather than an HTTP flood),
/// every request from a source address of its own, for `secs`; DORAs sampled meanwhile.
fn attack(server: u32, api: u16, dhcp: u16, phase: u8, concurrency: usize, secs: u64) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU32::new(0));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let end = Instant::now() + Duration::from_secs(secs);
    let barrier = Arc::new(std::sync::Barrier::new(concurrency + 1));
    let mut threads = Vec::new();
    for t in 0..concurrency {
        let (stop, next, answers, barrier) = (
            Arc::clone(&stop),
            Arc::clone(&next),
            Arc::clone(&answers),
            Arc::clone(&barrier),
        );
        let user = if t % 2 == 0 { "mikrotik-1" } else { "nobody" };
        threads.push(std::thread::spawn(move || {
            barrier.wait();
            for _ in 0..400 {
                if stop.load(Ordering::Relaxed) || Instant::now() > end {
                    break;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                let a = ask(source(phase, n), api, user, "wrong-secret");
                let quick = a.status != 401;
                answers.lock().unwrap().push(a);
                if quick {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }));
    }
    barrier.wait();
    std::thread::sleep(Duration::from_millis(300));
    let mut dhcp_samples = Vec::new();
    let mut rss = 0;
    for i in 0..12u8 {
        if Instant::now() + Duration::from_millis(500) > end {
            break;
        }
        dhcp_samples.push(timed_dora(
            dhcp,
            [2, 0, 0, 9, phase, i],
            0x5000_0000 | (u32::from(phase) << 8) | u32::from(i),
        ));
        rss = rss.max(proc_status(server, "VmRSS:"));
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let statuses = answers.lock().unwrap().clone();
    Phase {
        statuses,
        dhcp: dhcp_samples,
        rss_kib: rss,
    }
}

fn write_config(dir: &Path, api: u16, hash: &str) -> std::path::PathBuf {
    let cfg = dir.join("leased.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[server]
interfaces = ["lo"]
lease_time = "2h"
pid_file = "{pid}"

[store]
path = "{store}"

[[subnets]]
network = "198.18.0.0/24"
interface = "lo"
server_id = "198.18.0.1"
routers = ["198.18.0.1"]
pools = ["198.18.0.20-198.18.0.250"]

[api]
listen = "127.0.0.1:{api}"
keys = ["attack-test-key-0123456789"]

[export]
outbox = "{outbox}"

[[export.routers]]
username = "mikrotik-1"
password_hash = "{hash}"
"#,
            pid = dir.join("leased.pid").display(),
            store = dir.join("leases.db").display(),
            outbox = dir.join("outbox").display(),
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn router_endpoint_survives_a_password_flood_and_does_not_tell_users_apart() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_tcp();
    let dhcp = free_udp();
    let hash = leased_export::router::hash_password("router-secret").unwrap();
    let cfg = write_config(dir.path(), api, &hash);
    let log = dir.path().join("server.log");
    let (port, cport) = (dhcp.to_string(), (dhcp + 1).to_string());
    let mut server = Proc::spawn(
        &[
            "serve",
            "-c",
            cfg.to_str().unwrap(),
            "--port",
            &port,
            "--client-port",
            &cport,
        ],
        &log,
    );
    let pid = server.0.id();
    let server_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(15), || TcpStream::connect((
            "127.0.0.1",
            api
        ))
        .is_ok()),
        "server did not start:\n{}",
        server_log()
    );
    let baseline: Vec<Duration> = (0..5u8)
        .map(|i| timed_dora(dhcp, [2, 0, 0, 9, 0, i], 0x4000_0000 | u32::from(i)))
        .collect();
    let ok = ask(Ipv4Addr::LOCALHOST, api, "mikrotik-1", "router-secret");
    assert_eq!(ok.status, 200, "the router's own secret works");
    let one_check = ok.took;

    for (phase, concurrency) in [(1u8, 64usize), (2, 256)] {
        let p = attack(pid, api, dhcp, phase, concurrency, 5);
        let count = |s: u16| p.statuses.iter().filter(|a| a.status == s).count();
        let (denied, busy, refused) = (count(401), count(503), count(429));
        let closed = count(0);
        let hwm = proc_status(pid, "VmHWM:");
        println!(
            "{concurrency} concurrent: {} requests: {denied} × 401 (checked), {busy} × 503, \
             {refused} × 429, {closed} closed unanswered (max_connections); \
             DHCP DORA median {:?} max {:?} (baseline median {:?}); \
             VmRSS during {} MiB, VmHWM {} MiB; one check {one_check:?}",
            p.statuses.len(),
            median(p.dhcp.clone()),
            p.dhcp.iter().max().unwrap(),
            median(baseline.clone()),
            p.rss_kib / 1024,
            hwm / 1024,
        );
        assert_eq!(
            denied + busy + refused + closed,
            p.statuses.len(),
            "only 401, 503, 429 or a connection closed at once: {:?}",
            p.statuses.iter().map(|a| a.status).collect::<Vec<_>>()
        );
        assert!(denied >= 1, "checks still run under attack");
        assert!(
            busy + closed >= concurrency / 2,
            "excess refused at once: {busy} + {closed}"
        );
        assert!(
            p.statuses
                .iter()
                .filter(|a| a.status == 503)
                .all(|a| a.retry_after.is_some_and(|s| s >= 1)),
            "503 carries Retry-After"
        );
        // Refusals do not wait for a check (generous: a tenth of one check, or 50 ms).
        let quick = median(
            p.statuses
                .iter()
                .filter(|a| a.status == 503)
                .map(|a| a.took)
                .collect(),
        );
        assert!(
            quick < (one_check / 10).max(Duration::from_millis(50)),
            "503 after {quick:?}"
        );
        assert!(hwm < 300 * 1024, "peak RSS {} MiB", hwm / 1024);
        assert!(p.dhcp.len() >= 5, "DHCP samples: {:?}", p.dhcp);
        let m = median(p.dhcp.clone());
        assert!(
            m < Duration::from_millis(20),
            "DHCP during the attack: median {m:?} ({:?})",
            p.dhcp
        );
    }

    // One source failing again and again: refused before any check, with Retry-After.
    let src = Ipv4Addr::new(127, 20, 0, 1);
    for _ in 0..4 {
        assert_eq!(ask(src, api, "mikrotik-1", "guess").status, 401);
    }
    let r = ask(src, api, "mikrotik-1", "router-secret");
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.retry_after.is_some_and(|s| s >= 1), "{r:?}");
    assert!(r.took < one_check, "429 without a check: {r:?}");

    // Known and unknown user names cost the same: sequential, alternating, fresh sources.
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..7u8 {
        let k = ask(Ipv4Addr::new(127, 21, 0, 1 + i), api, "mikrotik-1", "nope");
        let u = ask(
            Ipv4Addr::new(127, 21, 1, 1 + i),
            api,
            "no-such-router",
            "nope",
        );
        assert_eq!((k.status, u.status), (401, 401));
        known.push(k.took);
        unknown.push(u.took);
    }
    let (mk, mu) = (median(known), median(unknown));
    let ratio = mk.max(mu).as_secs_f64() / mk.min(mu).as_secs_f64();
    println!(
        "known user wrong secret: median {mk:?}; unknown user: median {mu:?}; ratio {ratio:.2}"
    );
    assert!(ratio < 3.0, "known {mk:?} vs unknown {mu:?}");

    // The router's own requests still go through afterwards.
    assert_eq!(
        ask(Ipv4Addr::LOCALHOST, api, "mikrotik-1", "router-secret").status,
        200
    );
    let log_text = server_log();
    assert!(log_text.contains("router endpoint"), "{log_text}");
    server.term();
}

#[test]
fn export_test_uses_a_private_directory_and_follows_no_planted_symlink() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    let victim = dir.path().join("victim");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::create_dir(&victim).unwrap();
    // The old name was leased-export-test-<pid>: plant it for the next pids.
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let planted = (last + 1)..(last + 3000);
    for p in planted.clone() {
        std::os::unix::fs::symlink(&victim, tmp.join(format!("leased-export-test-{p}"))).unwrap();
    }

    // A Sonar that answers the credential check and, while leased waits for it, looks at what
    // leased made in its temporary directory.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen_tmp = {
        let tmp = tmp.clone();
        std::thread::spawn(move || {
            listener.set_nonblocking(false).unwrap();
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let mut dirs = Vec::new();
            for e in std::fs::read_dir(&tmp).unwrap() {
                let e = e.unwrap();
                let md = std::fs::symlink_metadata(e.path()).unwrap();
                if md.file_type().is_dir() {
                    let log = e.path().join("sonar/log");
                    let log_mode = std::fs::symlink_metadata(&log)
                        .map(|m| m.permissions().mode() & 0o777)
                        .ok();
                    dirs.push((
                        e.file_name().to_string_lossy().into_owned(),
                        md.permissions().mode() & 0o777,
                        md.uid(),
                        log_mode,
                    ));
                }
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            );
            (request, dirs)
        })
    };
    let cfg = dir.path().join("leased.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[[subnets]]
network = "198.18.0.0/24"
pools = ["198.18.0.10-198.18.0.20"]

[export]
outbox = "{outbox}"

[export.sonar]
url = "http://127.0.0.1:{port}"
username = "sonar-user"
password = "sonar-pass"
"#,
            outbox = dir.path().join("outbox").display()
        ),
    )
    .unwrap();
    let child = std::process::Command::new(common::BIN)
        .args(["export", "test", "-c", cfg.to_str().unwrap()])
        .env("TMPDIR", &tmp)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let child_pid = child.id();
    let mut out = common::Proc(child);
    let done = wait_for(Duration::from_secs(30), || {
        matches!(out.0.try_wait(), Ok(Some(_)))
    });
    assert!(done, "export test did not finish");
    let mut stdout = String::new();
    out.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let (request, dirs) = seen_tmp.join().unwrap();
    assert!(
        request.starts_with("GET /api/v1/system/tickets/ticket_groups?limit=1 "),
        "{request}"
    );
    assert_eq!(stdout, "sonar: Success!\n");
    assert!(
        planted.contains(&child_pid),
        "the run's pid {child_pid} had a planted symlink ({planted:?})"
    );
    // While it ran: one directory of its own, private, with an unpredictable name, and the
    // scratch outbox inside it.
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let (name, mode, uid, log_mode) = &dirs[0];
    assert!(name.starts_with("leased-export-test-"), "{name}");
    assert_ne!(
        name,
        &format!("leased-export-test-{child_pid}"),
        "predictable"
    );
    assert_eq!(*mode, 0o700, "{name}");
    assert_eq!(*uid, nix::unistd::geteuid().as_raw());
    assert_eq!(*log_mode, Some(0o600));
    // The planted symlink was not followed: nothing was written where it points, and the
    // scratch directory is gone.
    assert_eq!(
        std::fs::read_dir(&victim).unwrap().count(),
        0,
        "victim untouched"
    );
    let planted_name = tmp.join(format!("leased-export-test-{child_pid}"));
    assert!(
        std::fs::symlink_metadata(&planted_name)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let left: Vec<String> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_type().unwrap().is_symlink())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
