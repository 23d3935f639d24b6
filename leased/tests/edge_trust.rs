//! Files, locks and privileges at the edge, end to end with the real binary:
//! - a second `serve` that fails on the store lock leaves the running server's PID file alone;
//! - reservation edits from the HTTP API and from `leased manage` at once all land, through a
//!   symlinked config that stays a symlink;
//! - `leased demo` works in a private 0700 directory and follows no link planted at the names
//!   it used to use;
//! - `[server] user = "nobody"`: after start-up the process runs as nobody with only
//!   `CAP_NET_RAW`, and a real client with no address yet is still served (AF_PACKET), with the
//!   ARP conflict check opening its sockets after the drop; an unknown user is a config error
//!   at its line and column.
//!
//! The first two run unprivileged on loopback (test mode: high ports); the others need root and
//! network namespaces (`SKIP` on a laptop, a failure under `CI=true`). Addresses are in
//! 198.18.0.0/15, every wait is bounded, every process is stopped by its PID.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::useless_vec)]

// Only part of the shared harness is used here.
#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use leased_wire::{MessageType, Options, Packet, code};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use support::lab::CLI_IF;
use support::proc::{poll, run};
use support::{Cfg, Lab, Udhcpc};

const LEASED: &str = env!("CARGO_BIN_EXE_leased");
const KEY: &str = "edge-key-0123456789";

fn free_port(udp: bool) -> u16 {
    if udp {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

/// A `leased serve` child, killed by PID when dropped.
struct Served {
    child: Child,
    log: PathBuf,
}

impl Served {
    fn start(config: &Path, dhcp: u16, log: PathBuf) -> Served {
        let child = Command::new(LEASED)
            .args(["serve", "-c"])
            .arg(config)
            .args([
                "--port",
                &dhcp.to_string(),
                "--client-port",
                &(dhcp + 1).to_string(),
            ])
            .env_remove("LEASED_API_KEYS")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Served { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then a bounded wait.
    fn term(&mut self) -> bool {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        poll(Duration::from_secs(10), || {
            self.child.try_wait().ok().flatten().map(|_| ())
        })
        .is_some()
    }

    /// Waits (bounded) for the process to exit; its status code.
    fn wait_exit(&mut self, limit: Duration) -> Option<Option<i32>> {
        poll(limit, || {
            self.child.try_wait().ok().flatten().map(|s| s.code())
        })
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn packet(t: MessageType, mac: [u8; 6], xid: u32, extra: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac);
    let mut options = Options::new();
    options.set(code::MESSAGE_TYPE, vec![t.code()]);
    for (c, v) in extra {
        options.set(*c, v.clone());
    }
    let p = Packet {
        op: leased_wire::BOOTREQUEST,
        htype: 1,
        hlen: 6,
        hops: 0,
        xid,
        secs: 0,
        flags: 0x8000,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr,
        sname: vec![],
        file: vec![],
        options,
        option82_in_overload: false,
    };
    let mut out = Vec::new();
    p.encode(576, &mut out);
    out
}

/// DISCOVER → OFFER on loopback (test mode answers to the source port); the offered address,
/// or `None` when nothing answered within about 3 s.
fn offer(dhcp: u16, mac: [u8; 6], xid: u32) -> Option<Ipv4Addr> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, dhcp));
    let msg = packet(MessageType::Discover, mac, xid, &[]);
    let mut buf = [0u8; 2048];
    for _ in 0..10 {
        sock.send_to(&msg, server).unwrap();
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline {
            if let Ok((n, _)) = sock.recv_from(&mut buf)
                && let Ok(p) = Packet::decode(&buf[..n])
                && p.xid == xid
                && p.message_type() == Some(MessageType::Offer)
            {
                return Some(p.yiaddr);
            }
        }
    }
    None
}

fn loopback_config(store: &Path, pid: &Path, api: Option<u16>) -> String {
    let api = api.map_or_else(String::new, |port| {
        format!("\n[api]\nlisten = \"127.0.0.1:{port}\"\nkeys = [\"{KEY}\"]\n")
    });
    format!(
        r#"# edge-trust test
[server]
interfaces = ["lo"]
lease_time = "1h"
pid_file = "{pid}"

[store]
path = "{store}"

[[subnets]]
network = "198.18.0.0/24"
interface = "lo"
server_id = "198.18.0.1"
routers = ["198.18.0.1"]
pools = ["198.18.0.100-198.18.0.119"]
{api}"#,
        pid = pid.display(),
        store = store.display(),
    )
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn leased(args: &[&str]) -> Output {
    Command::new(LEASED)
        .args(args)
        .env_remove("LEASED_API_KEYS")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_failed_second_serve_leaves_the_first_ones_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("leases.db");
    let pid = dir.path().join("leased.pid");
    // A link planted at the PID file's name: replaced by the server's file, never followed.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep me\n").unwrap();
    std::os::unix::fs::symlink(&victim, &pid).unwrap();
    let cfg = dir.path().join("leased.toml");
    std::fs::write(&cfg, loopback_config(&store, &pid, None)).unwrap();

    let dhcp = free_port(true);
    let mut first = Served::start(&cfg, dhcp, dir.path().join("first.log"));
    let ok = poll(Duration::from_secs(10), || {
        (read_pid(&pid) == Some(first.pid())).then_some(())
    });
    assert!(ok.is_some(), "no PID file; log:\n{}", first.log());
    assert!(
        offer(dhcp, [2, 0, 0, 0, 0, 1], 0x0101).is_some(),
        "the first server does not answer; log:\n{}",
        first.log()
    );
    assert!(!std::fs::symlink_metadata(&pid).unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");

    // The same store (and PID file): refused on the lock, before the PID file is touched.
    let other = free_port(true);
    let mut second = Served::start(&cfg, other, dir.path().join("second.log"));
    let code = second.wait_exit(Duration::from_secs(15));
    assert!(
        matches!(code, Some(Some(c)) if c != 0),
        "the second server should fail: {code:?}; log:\n{}",
        second.log()
    );
    assert!(
        second
            .log()
            .contains("another leased is using the lease store"),
        "{}",
        second.log()
    );
    assert_eq!(read_pid(&pid), Some(first.pid()), "the PID file changed");

    // Another store but the same PID file: refused too, the file names the running server.
    let cfg2 = dir.path().join("other.toml");
    std::fs::write(
        &cfg2,
        loopback_config(&dir.path().join("other.db"), &pid, None),
    )
    .unwrap();
    let mut third = Served::start(&cfg2, other, dir.path().join("third.log"));
    let code = third.wait_exit(Duration::from_secs(15));
    assert!(
        matches!(code, Some(Some(c)) if c != 0),
        "{code:?}: {}",
        third.log()
    );
    assert!(
        third.log().contains("names a running leased"),
        "{}",
        third.log()
    );
    assert_eq!(read_pid(&pid), Some(first.pid()), "the PID file changed");

    // The first server still serves, and removes its own file when it stops.
    assert!(
        first.alive(),
        "the first server died; log:\n{}",
        first.log()
    );
    assert!(
        offer(dhcp, [2, 0, 0, 0, 0, 2], 0x0202).is_some(),
        "the first server stopped answering; log:\n{}",
        first.log()
    );
    assert!(first.term(), "the first server ignored SIGTERM");
    assert!(!pid.exists(), "the PID file stayed after a clean stop");

    // A PID file that names another process is not removed by a server that exits.
    std::fs::write(&pid, "1\n").unwrap();
    let mut fourth = Served::start(&cfg, dhcp, dir.path().join("fourth.log"));
    poll(Duration::from_secs(10), || {
        (read_pid(&pid) == Some(fourth.pid())).then_some(())
    })
    .expect("the PID file was not written");
    std::fs::write(&pid, "1\n").unwrap();
    assert!(fourth.term());
    assert_eq!(std::fs::read_to_string(&pid).unwrap(), "1\n");
}

/// One HTTP/1.1 request; returns (status, body).
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Api-Key: {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// The `(mac, ip)` of every reservation in a TOML config text.
fn reservations(text: &str) -> Vec<(String, String)> {
    let doc: toml_edit::DocumentMut = text.parse().unwrap();
    doc.get("reservations")
        .and_then(|r| r.as_array_of_tables())
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["mac"].as_str().unwrap().to_string(),
                        r["ip"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn api_and_manage_edits_at_once_all_land_through_a_symlink() {
    const EACH: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("etc");
    std::fs::create_dir(&real_dir).unwrap();
    let target = real_dir.join("leased.toml");
    let link = dir.path().join("leased.toml");
    let api = free_port(false);
    let text = loopback_config(
        &dir.path().join("leases.db"),
        &dir.path().join("leased.pid"),
        Some(api),
    );
    std::fs::write(&target, &text).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let dhcp = free_port(true);
    let mut server = Served::start(&link, dhcp, dir.path().join("server.log"));
    let up = poll(Duration::from_secs(15), || {
        TcpStream::connect(("127.0.0.1", api)).ok().map(|_| ())
    });
    assert!(
        up.is_some(),
        "the API never listened; log:\n{}",
        server.log()
    );

    // 30 POSTs and 30 `manage add`, released at once; distinct MACs and addresses.
    let gate = Arc::new(Barrier::new(2 * EACH));
    let mut threads = Vec::new();
    for i in 0..EACH {
        let g = Arc::clone(&gate);
        threads.push(std::thread::spawn(move || {
            let body = format!(
                r#"{{"mac": "02:aa:00:00:00:{i:02x}", "ip": "198.18.0.{}"}}"#,
                2 + i
            );
            g.wait();
            let (status, body) = http(api, "POST", "/reservations", Some(&body));
            (
                format!("api {i}"),
                status == 201,
                format!("{status} {body}"),
            )
        }));
        let g = Arc::clone(&gate);
        let link = link.clone();
        threads.push(std::thread::spawn(move || {
            let mac = format!("02:bb:00:00:00:{i:02x}");
            let ip = format!("198.18.0.{}", 40 + i);
            g.wait();
            let o = Command::new(LEASED)
                .arg("manage")
                .arg("-c")
                .arg(&link)
                .args(["add", &mac, &ip])
                .env_remove("LEASED_API_KEYS")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            (
                format!("manage {i}"),
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        }));
    }
    let failures: Vec<String> = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|(_, ok, _)| !ok)
        .map(|(who, _, why)| format!("{who}: {why}"))
        .collect();
    assert!(
        failures.is_empty(),
        "failed writers:\n{}",
        failures.join("\n")
    );

    // Every edit is in the real file; the link is still a link to it.
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(
        meta.file_type().is_symlink(),
        "the config link was replaced"
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), target);
    let after = std::fs::read_to_string(&target).unwrap();
    let got = reservations(&after);
    assert_eq!(got.len(), 2 * EACH, "lost edits:\n{after}");
    for i in 0..EACH {
        for (mac, ip) in [
            (
                format!("02:aa:00:00:00:{i:02x}"),
                format!("198.18.0.{}", 2 + i),
            ),
            (
                format!("02:bb:00:00:00:{i:02x}"),
                format!("198.18.0.{}", 40 + i),
            ),
        ] {
            assert!(
                got.contains(&(mac.clone(), ip.clone())),
                "{mac} {ip} missing:\n{after}"
            );
        }
    }
    assert!(after.starts_with("# edge-trust test\n"), "comments lost");
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "the file's mode changed");
    let check = leased(&["check", "-c", link.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "leased check: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Nothing left behind but the lock file beside the real config.
    let mut names: Vec<String> = std::fs::read_dir(&real_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".leased.toml.lock", "leased.toml"], "{names:?}");

    // The running server ends up with all of them (the API writes reload at once; manage's
    // SIGHUPs may still be on their way).
    let seen = poll(Duration::from_secs(20), || {
        let (st, body) = http(api, "GET", "/reservations", None);
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (st == 200 && v.as_array()?.len() == 2 * EACH).then_some(())
    });
    assert!(seen.is_some(), "server log:\n{}", server.log());
    assert!(server.term());
}

#[test]
fn an_unknown_user_is_a_config_error_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("leased.toml");
    std::fs::write(
        &cfg,
        "[server]\nlease_time = \"1h\"\nuser = \"no-such-leased-user\"\ngroup = \"no-such-leased-group\"\n\n[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [\"198.18.0.10-198.18.0.20\"]\n",
    )
    .unwrap();
    let o = leased(&["check", "-c", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    let at = format!(
        "{}:3:8: server.user: no user \"no-such-leased-user\"",
        cfg.display()
    );
    assert!(err.contains(&at), "{err}");
    let at = format!("{}:4:9: server.group: no group", cfg.display());
    assert!(err.contains(&at), "{err}");
    // serve refuses the same file with the same words before binding anything.
    let o = leased(&[
        "serve",
        "-c",
        cfg.to_str().unwrap(),
        "--port",
        "1",
        "--client-port",
        "2",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("server.user: no user"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `/proc/PID/status` fields.
fn status(pid: u32, task: Option<&str>) -> Option<String> {
    let path = match task {
        Some(t) => format!("/proc/{pid}/task/{t}/status"),
        None => format!("/proc/{pid}/status"),
    };
    std::fs::read_to_string(path).ok()
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in\n{status}"))
}

fn caps(status: &str, name: &str) -> u64 {
    u64::from_str_radix(field(status, name), 16).unwrap()
}

const CAP_NET_RAW: u64 = 1 << 13;

#[test]
fn serve_as_nobody_keeps_only_net_raw_and_still_serves() {
    if !gate!("udhcpc") {
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody");
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .expect("group nogroup");
    let (uid, gid) = (nobody.uid.as_raw(), nogroup.gid.as_raw());
    let lab = Lab::new();
    // The state directory belongs to the user: compaction, history, the PID file's removal.
    let state = lab.path("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(uid), Some(gid)).unwrap();
    let mut cfg = Cfg::for_lab(&lab);
    cfg.store_path = state.join("leases.db");
    let pid_file = state.join("leased.pid");
    let text = cfg.render().replacen(
        "[server]\n",
        &format!(
            "[server]\nuser = \"nobody\"\ngroup = \"nogroup\"\npid_file = \"{}\"\n\
             conflict_check = \"arp\"\nconflict_check_timeout_ms = 100\n",
            pid_file.display()
        ),
        1,
    );
    let mut srv = lab.start_server(&text);
    let pid = srv.pid();
    let dropped = poll(Duration::from_secs(10), || {
        srv.log().contains("dropped root").then_some(())
    });
    assert!(dropped.is_some(), "no drop logged; log:\n{}", srv.log());

    // The whole process runs as nobody:nogroup; the main thread keeps exactly CAP_NET_RAW,
    // no thread has more, nothing is inheritable or ambient, the bounding set is cut too.
    let main = status(pid, None).expect("status");
    let ids = |v: u32| format!("{v}\t{v}\t{v}\t{v}");
    assert_eq!(field(&main, "Uid"), ids(uid), "{main}");
    assert_eq!(field(&main, "Gid"), ids(gid), "{main}");
    assert_eq!(field(&main, "Groups"), gid.to_string(), "{main}");
    assert_eq!(caps(&main, "CapEff"), CAP_NET_RAW, "{main}");
    assert_eq!(caps(&main, "CapPrm"), CAP_NET_RAW, "{main}");
    assert_eq!(caps(&main, "CapInh"), 0, "{main}");
    assert_eq!(caps(&main, "CapAmb"), 0, "{main}");
    assert_eq!(caps(&main, "CapBnd"), CAP_NET_RAW, "{main}");
    let tasks: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(tasks.len() > 1, "expected the runtime's threads: {tasks:?}");
    for t in &tasks {
        let Some(st) = status(pid, Some(t)) else {
            continue; // the thread ended meanwhile
        };
        assert_eq!(field(&st, "Uid"), ids(uid), "thread {t}\n{st}");
        assert_eq!(field(&st, "Gid"), ids(gid), "thread {t}\n{st}");
        for set in ["CapEff", "CapPrm"] {
            assert_eq!(caps(&st, set) & !CAP_NET_RAW, 0, "thread {t} {set}\n{st}");
        }
    }
    assert_eq!(read_pid(&pid_file), Some(pid));
    // The journal root created at start-up was handed to the user who now writes it.
    let journal = std::fs::metadata(state.join("leases.db")).unwrap();
    assert_eq!((journal.uid(), journal.gid()), (uid, gid));

    // A client with no address yet, asking for unicast replies: the OFFER and ACK leave
    // through the AF_PACKET socket; each OFFER first waits for an ARP probe on a socket
    // opened after the drop.
    let mut u = Udhcpc::new(&lab, &lab.cli_ns, CLI_IF, "udhcpc", None);
    u.start(false, true, &[]);
    let ev = u.c.wait_event(0, &["bound"], Duration::from_secs(20));
    let ip = ev
        .and_then(|e| e.ip())
        .unwrap_or_else(|| panic!("udhcpc got no lease\n{}\nlog:\n{}", u.c.diag(), srv.log()));
    u.c.stop();
    assert!(cfg.pools[0].0 <= ip && ip <= cfg.pools[0].1, "{ip}");
    let log = srv.log();
    assert!(!log.contains("offering unchecked"), "{log}");
    assert!(!log.contains("AF_PACKET send"), "{log}");
    assert!(!log.contains("needs CAP_NET_RAW"), "{log}");

    // Reload as nobody: the file is readable, the new plan takes over.
    let reserved = lab.ip(50);
    let mac = lab.mac(0x50, 0x01);
    srv.write_config(&text.replace(
        "\n[[subnets]]",
        &format!("\n[[reservations]]\nmac = \"{mac}\"\nip = \"{reserved}\"\n\n[[subnets]]"),
    ));
    srv.sighup();
    let reloaded = srv.wait_log(Duration::from_secs(10), |l| l.contains("config reloaded"));
    assert!(reloaded.is_some(), "log:\n{}", srv.log());
    lab.set_client_mac(&mac);
    let mut u = Udhcpc::new(&lab, &lab.cli_ns, CLI_IF, "reserved", None);
    u.start(false, true, &[]);
    let ev = u.c.wait_event(0, &["bound"], Duration::from_secs(20));
    assert_eq!(
        ev.and_then(|e| e.ip()),
        Some(reserved),
        "{}\nlog:\n{}",
        u.c.diag(),
        srv.log()
    );
    u.c.stop();

    // The journal written as nobody holds both leases; a clean stop removes the PID file.
    let leases = srv.leases();
    assert!(leases.iter().any(|l| l.ip == ip), "{leases:?}");
    assert!(leases.iter().any(|l| l.ip == reserved), "{leases:?}");
    let st = srv.term();
    assert!(st.success(), "{st}; log:\n{}", srv.log());
    assert!(
        !pid_file.exists(),
        "the PID file stayed; log:\n{}",
        srv.log()
    );
}

#[test]
fn demo_uses_a_private_directory_and_follows_no_planted_link() {
    if !gate!() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = tempfile::tempdir().unwrap();
    // Links at every name the demo used to derive from its PID, for the PIDs it may get.
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let planted: Vec<PathBuf> = (last..last + 400)
        .map(|n| {
            let p = tmp.path().join(format!("leased-demo-{n}"));
            std::os::unix::fs::symlink(victim.path(), &p).unwrap();
            p
        })
        .collect();

    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("demo.out");
    let mut demo = Command::new(LEASED)
        .arg("demo")
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Watch for the demo's own directory while it runs.
    let mut seen: Option<(PathBuf, u32, u32, bool)> = None;
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = demo.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "the demo ran too long"
        );
        if seen.is_none() {
            for e in std::fs::read_dir(tmp.path()).unwrap().flatten() {
                let p = e.path();
                let Ok(meta) = std::fs::symlink_metadata(&p) else {
                    continue;
                };
                if meta.is_dir() {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    let predictable = name
                        .strip_prefix("leased-demo-")
                        .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()));
                    seen = Some((p, meta.mode() & 0o7777, meta.uid(), predictable));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(status.success(), "demo failed ({status}):\n{text}");
    assert!(text.contains("every step behaved as expected"), "{text}");
    let (dir, mode, owner, predictable) = seen.expect("the demo's directory was never seen");
    assert_eq!(mode, 0o700, "{}", dir.display());
    assert_eq!(owner, 0);
    assert!(!predictable, "{} is a predictable name", dir.display());
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        text.contains(&format!("{name}-srv")),
        "the namespaces carry the directory's random part:\n{text}"
    );
    assert!(!dir.exists(), "the demo left {} behind", dir.display());
    // Nothing went through the planted links.
    assert_eq!(std::fs::read_dir(victim.path()).unwrap().count(), 0);
    for p in &planted {
        assert!(std::fs::symlink_metadata(p).unwrap().is_symlink());
    }
    let left = run(
        None,
        &crate::argv!["ip", "netns", "list"],
        Duration::from_secs(5),
    );
    assert!(!left.stdout.contains(&name), "{}", left.stdout);
}
