//! The HTTP API seen by a real DHCP client: a reservation added over the API is what udhcpc
//! gets at its next exchange, and after DELETE it gets a pool address again. The API listens
//! on 127.0.0.1 inside the server's namespace and is driven with curl run in that namespace.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;

use super::interop::{in_pool, wait_bound};
use crate::argv;
use crate::gate;
use crate::support::lab::CLI_IF;
use crate::support::proc::run;
use crate::support::{Cfg, Lab, Server, Udhcpc};

const KEY: &str = "system-test-key-0123";
const API: &str = "http://127.0.0.1:8067";

/// curl inside the server's namespace; returns (HTTP status, body).
fn curl(lab: &Lab, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut a = argv![
        "curl",
        "-sS",
        "--max-time",
        "10",
        "-X",
        method,
        "-H",
        format!("X-Api-Key: {KEY}"),
        "-H",
        "Content-Type: application/json",
        "-w",
        "\n%{http_code}"
    ];
    if let Some(b) = body {
        a.push("--data".into());
        a.push(b.into());
    }
    a.push(format!("{API}{path}"));
    let out = run(Some(&lab.srv_ns), &a, Duration::from_secs(15));
    assert_eq!(out.code(), Some(0), "curl {path}: {}", out.stderr);
    let (body, code) = out.stdout.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_string())
}

fn get(lab: &Lab, path: &str) -> Value {
    let (st, body) = curl(lab, "GET", path, None);
    assert_eq!(st, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("json")
}

/// One udhcpc run to `bound` (then it quits); returns its address.
fn udhcpc_lease(lab: &Lab, srv: &Server, tag: &str) -> Ipv4Addr {
    let mut u = Udhcpc::new(lab, &lab.cli_ns, CLI_IF, tag, None);
    u.start(true, true, &[]);
    let ev = u.c.wait_event(0, &["bound"], Duration::from_secs(15));
    let ip = ev
        .and_then(|e| e.ip())
        .unwrap_or_else(|| panic!("udhcpc got no lease\n{}\nlog:\n{}", u.c.diag(), srv.log()));
    u.c.stop();
    ip
}

#[test]
fn reservation_crud_over_the_api_seen_by_udhcpc() {
    if !gate!("udhcpc", "curl") {
        return;
    }
    let lab = Lab::new();
    let mut cfg = Cfg::for_lab(&lab);
    cfg.extra = format!("[api]\nlisten = \"127.0.0.1:8067\"\nkeys = [\"{KEY}\"]\n");
    let srv = lab.start_server(&cfg.render());
    let m = lab.mac(9, 1);
    lab.set_client_mac(&m);

    // Wait for the API (it starts with the server, but the harness waits only for :67).
    let mut up = false;
    for _ in 0..50 {
        let out = run(
            Some(&lab.srv_ns),
            &argv!["curl", "-s", "-o", "/dev/null", format!("{API}/health")],
            Duration::from_secs(5),
        );
        if out.code() == Some(0) {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(up, "API never answered\nlog:\n{}", srv.log());

    // Before: a pool address, visible in /leases and /subnets.
    let first = udhcpc_lease(&lab, &srv, "api1");
    assert!(in_pool(&cfg, first), "{first}");
    wait_bound(&srv, &m, first, "pool lease", |_| true);
    let mut seen = Value::Null;
    for _ in 0..50 {
        seen = get(&lab, &format!("/leases?mac={m}"));
        if seen["total"] == 1 && seen["leases"][0]["state"] == "bound" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(seen["leases"][0]["ip"], first.to_string(), "{seen}");
    let subnets = get(&lab, "/subnets");
    let net = lab.net.to_string();
    assert_eq!(subnets[&net]["ips"]["active"], 1, "{subnets}");
    assert_eq!(
        subnets[&net]["leases"][first.to_string()]["hardware-ethernet"],
        m
    );

    // POST a reservation: the very next exchange of the real client gets it.
    let reserved = lab.ip(20);
    let (st, body) = curl(
        &lab,
        "POST",
        "/reservations",
        Some(&format!(
            r#"{{"mac": "{m}", "ip": "{reserved}", "hostname": "sys"}}"#
        )),
    );
    assert_eq!(st, 201, "{body}\nlog:\n{}", srv.log());
    let second = udhcpc_lease(&lab, &srv, "api2");
    assert_eq!(second, reserved, "after POST\nlog:\n{}", srv.log());
    wait_bound(&srv, &m, reserved, "reserved lease", |_| true);
    let (st, body) = curl(&lab, "GET", &format!("/reservations/{reserved}"), None);
    assert_eq!(st, 200, "{body}");

    // DELETE it: the next exchange gets a pool address again.
    let (st, body) = curl(&lab, "DELETE", &format!("/reservations/{reserved}"), None);
    assert_eq!(st, 204, "{body}");
    let third = udhcpc_lease(&lab, &srv, "api3");
    assert!(
        in_pool(&cfg, third) && third != reserved,
        "after DELETE: {third}"
    );
    let text = std::fs::read_to_string(&srv.cfg_path).expect("config");
    assert!(!text.contains(&format!("ip = \"{reserved}\"")), "{text}");
}
