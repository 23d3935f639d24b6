//! The operator surface against a running `leased serve` (DHCP in test mode on loopback, high
//! ports, addresses in 198.18.0.0/15): `console attach` (replay, live lines), `stats` read over
//! the API, `reload` (valid: the server reloads; invalid: refused, nothing signalled),
//! auto-reload on a file change (an invalid change keeps the old plan), and `manage add`
//! picked up by the running server. Every wait is bounded; processes are stopped by PID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "ops/common.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Proc, dora, free_tcp, free_udp, leased, text, wait_for};

const KEY: &str = "ops-key-0123456789";

#[test]
fn console_stats_reload_and_auto_reload_on_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_tcp();
    let dhcp = free_udp();
    let cfg = dir.path().join("leased.toml");
    let sock = dir.path().join("console.sock");
    let valid = format!(
        r#"# ops test
[server]
interfaces = ["lo"]
lease_time = "2h"
pid_file = "{pid}"
auto_reload = true

[store]
path = "{store}"

[[subnets]]
network = "198.18.0.0/24"
interface = "lo"
server_id = "198.18.0.1"
routers = ["198.18.0.1"]
pools = ["198.18.0.100-198.18.0.119"]

[api]
listen = "127.0.0.1:{api}"
keys = ["{KEY}"]

[console]
socket = "{sock}"
replay = 500
"#,
        pid = dir.path().join("leased.pid").display(),
        store = dir.path().join("leases.db").display(),
        sock = sock.display(),
    );
    std::fs::write(&cfg, &valid).unwrap();
    let c = cfg.to_str().unwrap();
    let log = dir.path().join("server.log");
    let port = dhcp.to_string();
    let cport = (dhcp + 1).to_string();
    let mut server = Proc::spawn(
        &["serve", "-c", c, "--port", &port, "--client-port", &cport],
        &log,
    );
    let server_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(15), || sock.exists()
            && std::net::TcpStream::connect(("127.0.0.1", api)).is_ok()),
        "server did not start:\n{}",
        server_log()
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "console socket mode");

    let a = dora(dhcp, [2, 0, 0, 0, 3, 1], 0x8001, "first");

    // Attach: the replay holds the start-up and the first client's lines.
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut viewer = Proc(
        Command::new(common::BIN)
            .args([
                "console",
                "attach",
                "--socket",
                sock.to_str().unwrap(),
                "-n",
                "400",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = viewer.0.stdout.take().unwrap();
    let sink = Arc::clone(&lines);
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            sink.lock().unwrap().push(l);
        }
    });
    let has = |needle: &str| lines.lock().unwrap().iter().any(|l| l.contains(needle));
    assert!(
        wait_for(Duration::from_secs(10), || has("02:00:00:00:03:01")),
        "replay lacks the first client: {:?}",
        lines.lock().unwrap()
    );
    assert!(has("console listening"), "replay starts at start-up");
    // Live: a second client appears while attached.
    let b = dora(dhcp, [2, 0, 0, 0, 3, 2], 0x8002, "second");
    assert!(
        wait_for(Duration::from_secs(10), || has("02:00:00:00:03:02")),
        "live line missing: {:?}",
        lines.lock().unwrap()
    );

    // stats reads the live server over its API (the lease snapshot is published within
    // ~100 ms of a change).
    let mut last = (String::new(), String::new());
    let live = wait_for(Duration::from_secs(10), || {
        let o = leased(&["stats", "-c", c], &[]);
        last = text(&o);
        o.status.success() && last.0.contains("current   2")
    });
    assert!(live, "{}{}", last.0, last.1);
    assert!(
        last.1.contains(&format!("API http://127.0.0.1:{api}")),
        "{}",
        last.1
    );
    let o = leased(&["stats", "-c", c, "--details", "--from", "api"], &[]);
    let (out, _) = text(&o);
    for ip in [a, b] {
        assert!(out.contains(&format!("{ip}")), "{out}");
    }
    assert!(
        out.lines().any(|l| l.starts_with(&format!("{a} "))
            && l.contains(" leased ")
            && l.contains("02:00:00:00:03:01")
            && l.ends_with("first")),
        "{out}"
    );

    let reloads = || server_log().matches("config reloaded").count();
    // reload of a valid config: validated, SIGHUP, the server reloads.
    let n = reloads();
    let o = leased(&["reload", "-c", c], &[]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(
        wait_for(Duration::from_secs(10), || reloads() > n),
        "{}",
        server_log()
    );

    // An invalid file: `reload` refuses it; auto-reload sees the change, refuses it too, and
    // the old plan keeps serving.
    let n = reloads();
    std::fs::write(
        &cfg,
        valid.replace("lease_time = \"2h\"", "lease_time = \"later\""),
    )
    .unwrap();
    let o = leased(&["reload", "-c", c], &[]);
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(
        wait_for(Duration::from_secs(10), || server_log()
            .contains("auto-reload: the changed file is invalid")),
        "{}",
        server_log()
    );
    assert!(
        has("still serving the previous configuration"),
        "the console shows it too"
    );
    assert_eq!(reloads(), n, "no reload of an invalid file");
    assert_eq!(
        dora(dhcp, [2, 0, 0, 0, 3, 1], 0x8003, "first"),
        a,
        "still serving"
    );

    // A valid change through `manage add`: auto-reload picks it up, the client moves.
    std::fs::write(&cfg, &valid).unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || reloads() > n),
        "{}",
        server_log()
    );
    let n = reloads();
    let o = leased(
        &[
            "manage",
            "-c",
            c,
            "add",
            "02:00:00:00:03:01",
            "198.18.0.50",
            "moved",
        ],
        &[],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(err.contains("auto_reload"), "{err}");
    assert!(
        wait_for(Duration::from_secs(10), || reloads() > n),
        "{}",
        server_log()
    );
    assert_eq!(
        dora(dhcp, [2, 0, 0, 0, 3, 1], 0x8004, "first"),
        Ipv4Addr::new(198, 18, 0, 50)
    );
    assert!(
        std::fs::read_to_string(&cfg)
            .unwrap()
            .starts_with("# ops test\n")
    );

    server.term();
    assert!(!sock.exists(), "the console socket is removed at shutdown");
    // The viewer sees the server go away and ends.
    assert!(wait_for(Duration::from_secs(10), || matches!(
        viewer.0.try_wait(),
        Ok(Some(_))
    )));
    reader.join().unwrap();
    assert!(has("SIGTERM"), "{:?}", lines.lock().unwrap().last());
}

#[test]
fn console_over_tcp_needs_the_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let dhcp = free_udp();
    let tcp = free_tcp();
    let cfg = dir.path().join("leased.toml");
    let sock = dir.path().join("c.sock");
    std::fs::write(
        &cfg,
        format!(
            r#"[server]
interfaces = ["lo"]
[store]
path = "{store}"
[[subnets]]
network = "198.18.0.0/24"
interface = "lo"
server_id = "198.18.0.1"
pools = ["198.18.0.100-198.18.0.119"]
[console]
socket = "{sock}"
tcp_listen = "127.0.0.1:{tcp}"
allow_plaintext = true
"#,
            store = dir.path().join("l.db").display(),
            sock = sock.display(),
        ),
    )
    .unwrap();
    let log = dir.path().join("server.log");
    let port = dhcp.to_string();
    let cport = (dhcp + 1).to_string();
    let mut server = Proc(
        Command::new(common::BIN)
            .args([
                "serve",
                "-c",
                cfg.to_str().unwrap(),
                "--port",
                &port,
                "--client-port",
                &cport,
            ])
            .env("LEASED_API_KEYS", "tcp-key-0123456789")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    assert!(
        wait_for(Duration::from_secs(15), || std::net::TcpStream::connect((
            "127.0.0.1",
            tcp
        ))
        .is_ok()),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let addr = format!("127.0.0.1:{tcp}");
    let o = leased(
        &["console", "attach", "--tcp", &addr, "--key", "wrong"],
        &[],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("authentication failed"), "{err}");
    let o = leased(&["console", "attach", "--tcp", &addr], &[]);
    assert!(!o.status.success(), "no key, no console");
    // With the key: the replay arrives; the viewer is ended by PID.
    let mut viewer = Proc(
        Command::new(common::BIN)
            .args(["console", "attach", "--tcp", &addr, "-n", "100"])
            .env("LEASED_API_KEY", "tcp-key-0123456789")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = viewer.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a replayed line");
    assert!(!first.is_empty());
    viewer.0.kill().unwrap();
    let _ = viewer.0.wait();
    server.term();
}
