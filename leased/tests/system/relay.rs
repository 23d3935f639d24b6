//! Through a real relay agent: ISC dhcrelay between a client link and the server link. The
//! server must pick the subnet by giaddr and answer the relay on port 67.
//!
//! Topology: `rc` [cli0, client] ⇄ `cli` [rl0 198.19.X.1/24 | cli0 198.18.X.2/24, dhcrelay]
//! ⇄ `srv` [srv0 198.18.X.1/24, route 198.19.X.0/24 via 198.18.X.2].

use std::net::Ipv4Addr;
use std::time::Duration;

use super::interop::wait_bound;
use crate::argv;
use crate::gate;
use crate::support::lab::{CLI_IF, SRV_IF};
use crate::support::proc::{Proc, bin, must, poll, run};
use crate::support::{Cfg, Lab, Udhcpc};

#[test]
fn relayed_clients_are_served() {
    if !gate!("dhcrelay", "udhcpc") {
        return;
    }
    let lab = Lab::new();
    let x = lab.net.network().octets()[2];
    let remote = |n: u8| Ipv4Addr::new(198, 19, x, n);
    let relay_up = lab.ip(2);
    // the relay lives in the lab's client namespace; the relayed client in its own
    let rc = format!("{}-rc", lab.name);
    lab.add_ns(&rc);
    must(
        None,
        &argv![
            "ip", "link", "add", "rl0", "netns", lab.cli_ns, "type", "veth", "peer", "name",
            CLI_IF, "netns", rc
        ],
    );
    lab.add_client_addr(&format!("{relay_up}/24"));
    must(
        Some(&lab.cli_ns),
        &argv![
            "ip",
            "addr",
            "add",
            format!("{}/24", remote(1)),
            "dev",
            "rl0"
        ],
    );
    must(Some(&lab.cli_ns), &argv!["ip", "link", "set", "rl0", "up"]);
    must(
        Some(&lab.cli_ns),
        &argv!["sysctl", "-qw", "net.ipv4.ip_forward=1"],
    );
    must(Some(&rc), &argv!["ip", "link", "set", CLI_IF, "up"]);
    must(
        Some(&lab.srv_ns),
        &argv![
            "ip",
            "route",
            "add",
            format!("198.19.{x}.0/24"),
            "via",
            relay_up,
            "dev",
            SRV_IF
        ],
    );

    let mut cfg = Cfg::for_lab(&lab);
    cfg.extra = format!(
        "[[subnets]]\nnetwork = \"198.19.{x}.0/24\"\nrouters = [\"{}\"]\npools = [\"{}-{}\"]\n",
        remote(1),
        remote(100),
        remote(200)
    );
    let srv = lab.start_server(&cfg.render());

    let pf = lab.path("dhcrelay.pid");
    let a = argv![
        bin("dhcrelay"),
        "-4",
        "-d",
        "-pf",
        pf.display(),
        "-id",
        "rl0",
        "-iu",
        CLI_IF,
        lab.srv_ip
    ];
    let mut relay = Proc::spawn(
        "dhcrelay",
        Some(&lab.cli_ns),
        &a,
        &lab.path("dhcrelay.out"),
        &[],
    );
    let listening = poll(Duration::from_secs(5), || {
        let o = run(
            Some(&lab.cli_ns),
            &argv!["ss", "-Hulnp", "sport = :67"],
            Duration::from_secs(5),
        );
        o.stdout
            .contains(&format!("pid={},", relay.pid()))
            .then_some(())
    });
    assert!(
        listening.is_some() && relay.alive(),
        "dhcrelay did not start: {}",
        relay.output()
    );

    let mac = lab.mac(12, 1);
    must(
        Some(&rc),
        &argv!["ip", "link", "set", CLI_IF, "address", mac],
    );
    let mut u = Udhcpc::new(&lab, &rc, CLI_IF, "udhcpc-relayed", Some("relayed-host"));
    u.start(false, true, &[]);
    let ev = u.c.wait_event(0, &["bound"], Duration::from_secs(15));
    let ev = ev.unwrap_or_else(|| {
        panic!(
            "no lease through the relay\n{}\n--- dhcrelay\n{}\n--- server log\n{}",
            u.c.diag(),
            relay.output(),
            srv.log()
        )
    });
    let ip = ev.ip().expect("ip");
    assert!(
        remote(100) <= ip && ip <= remote(200),
        "relayed client got {ip}, not from the relayed subnet's pool"
    );
    assert_eq!(
        ev.var("router"),
        Some(remote(1).to_string().as_str()),
        "router of the relayed subnet"
    );
    assert_eq!(ev.var("serverid"), Some(lab.srv_ip.to_string().as_str()));
    let l = wait_bound(&srv, &mac, ip, "relayed lease", |_| true);
    assert_eq!(l.hostname.as_deref(), Some("relayed-host"));

    // and a probe on the server link still gets the local subnet
    let p = lab.probe(&crate::support::clients::ProbeOpts::mac(&lab.mac(12, 2)));
    assert_eq!(p.code(), Some(0), "{}", p.diag());
    assert!(
        lab.net.contains(&p.ip().expect("ip")),
        "local client got {:?}",
        p.ip()
    );
    relay.stop(Duration::from_secs(3));
}

/// `leased probe --giaddr` as a relay agent: Option 82 is echoed back (RFC 3046) and a
/// port reservation (switch MAC + port from Option 82) gives the port's address to whichever
/// device is on the port.
#[test]
fn option82_echo_and_port_reservation() {
    if !gate!() {
        return;
    }
    let lab = Lab::new();
    let giaddr = lab.ip(2);
    lab.add_client_addr(&format!("{giaddr}/24"));
    let switch = "02:5c:00:00:00:01";
    let mut cfg = Cfg::for_lab(&lab);
    cfg.extra = format!(
        "[[reservations]]\nport_key = {{ switch = \"{switch}\", port = 4 }}\nip = \"{}\"\n",
        lab.ip(30)
    );
    let srv = lab.start_server(&cfg.render());
    // circuit-id: VLAN 1 port 4 (D-Link layout); remote-id: type 0, length 6, switch MAC
    let opt82 = |port: u8| format!("01060004000100{port:02x}02080006{}", "025c00000001");
    let relayed = |mac: &str, port: u8| {
        let a = argv![
            crate::support::server::leased_bin(),
            "probe",
            "--giaddr",
            giaddr,
            "--server",
            lab.srv_ip,
            "--mac",
            mac,
            "--option82",
            opt82(port),
            "--timeout",
            5,
            "--json"
        ];
        let o = run(Some(&lab.cli_ns), &a, Duration::from_secs(20));
        let j: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap_or_default();
        (o, j)
    };
    let ack_opt82 = |j: &serde_json::Value| {
        j.get("ack")?
            .get("options")?
            .as_array()?
            .iter()
            .find(|o| o.get("code").and_then(|c| c.as_u64()) == Some(82))?
            .get("hex")?
            .as_str()
            .map(str::to_string)
    };

    let (m1, m2, m3) = (lab.mac(17, 1), lab.mac(17, 2), lab.mac(17, 3));
    let (o, j) = relayed(&m1, 4);
    assert_eq!(
        o.code(),
        Some(0),
        "relayed probe: {}\nlog:\n{}",
        o.all(),
        srv.log()
    );
    assert_eq!(
        j.get("address").and_then(|a| a.as_str()),
        Some(lab.ip(30).to_string().as_str()),
        "port 4's address: {}",
        o.all()
    );
    assert_eq!(
        ack_opt82(&j).as_deref(),
        Some(opt82(4).as_str()),
        "Option 82 not echoed: {}",
        o.all()
    );
    wait_bound(&srv, &m1, lab.ip(30), "port reservation", |_| true);

    // another device on the same port takes the address over
    let (o, j) = relayed(&m2, 4);
    assert_eq!(o.code(), Some(0), "{}", o.all());
    assert_eq!(
        j.get("address").and_then(|a| a.as_str()),
        Some(lab.ip(30).to_string().as_str()),
        "takeover: {}",
        o.all()
    );
    wait_bound(&srv, &m2, lab.ip(30), "port takeover", |_| true);

    // a device on another port gets a pool address, Option 82 still echoed
    let (o, j) = relayed(&m3, 5);
    assert_eq!(o.code(), Some(0), "{}", o.all());
    let ip: Ipv4Addr = j
        .get("address")
        .and_then(|a| a.as_str())
        .and_then(|s| s.parse().ok())
        .expect("address");
    assert!(super::interop::in_pool(&cfg, ip), "port 5 device got {ip}");
    assert_eq!(
        ack_opt82(&j).as_deref(),
        Some(opt82(5).as_str()),
        "Option 82 not echoed: {}",
        o.all()
    );
}
