//! Tests 10 and 11: malformed datagrams do not hurt the server; a broken config on SIGHUP is
//! reported with file:line:col and the old config keeps serving, a good one takes effect.

use std::net::SocketAddrV4;
use std::time::Duration;

use super::interop::wait_bound;
use crate::gate;
use crate::support::clients::{PROBE_ACK, ProbeOpts};
use crate::support::raw::send_from_ns;
use crate::support::{Cfg, Lab};

/// A BOOTREQUEST header + magic cookie + `opts` (END appended when `end`).
fn packet(chaddr: [u8; 6], hlen: u8, cookie: [u8; 4], opts: &[u8], end: bool) -> Vec<u8> {
    let mut p = vec![0u8; 236];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = hlen;
    p[4..8].copy_from_slice(&[0x5e, 0xed, 0x00, 0x01]); // xid
    p[10] = 0x80; // broadcast flag
    p[28..34].copy_from_slice(&chaddr);
    p.extend_from_slice(&cookie);
    p.extend_from_slice(opts);
    if end {
        p.push(255);
    }
    p
}

const COOKIE: [u8; 4] = [99, 130, 83, 99];

fn malformed(mac: [u8; 6]) -> Vec<(&'static str, Vec<u8>)> {
    let discover = [53, 1, 1];
    let good = packet(mac, 6, COOKIE, &discover, true);
    let mut v = vec![
        ("empty", Vec::new()),
        ("one byte", vec![1]),
        ("truncated header (100 bytes)", good[..100].to_vec()),
        ("header without cookie (236 bytes)", good[..236].to_vec()),
        ("cookie cut short (238 bytes)", good[..238].to_vec()),
        (
            "bad magic cookie",
            packet(mac, 6, [0xde, 0xad, 0xbe, 0xef], &discover, true),
        ),
        (
            "option length overruns the packet",
            packet(
                mac,
                6,
                COOKIE,
                &[53, 1, 1, 12, 200, b'a', b'b', b'c'],
                false,
            ),
        ),
        (
            "option 53 length overrun",
            packet(mac, 6, COOKIE, &[53, 40, 1], false),
        ),
        (
            "option 53 zero length",
            packet(mac, 6, COOKIE, &[53, 0], true),
        ),
        (
            "option 53 unknown type",
            packet(mac, 6, COOKIE, &[53, 1, 200], true),
        ),
        ("hlen 17", packet(mac, 17, COOKIE, &discover, true)),
        ("hlen 255", packet(mac, 255, COOKIE, &discover, true)),
        ("zero chaddr", packet([0; 6], 6, COOKIE, &discover, true)),
        (
            "missing option 53",
            packet(mac, 6, COOKIE, &[12, 3, b'a', b'b', b'c'], true),
        ),
        ("no END option", packet(mac, 6, COOKIE, &discover, false)),
        ("option 52 overload pointing at garbage", {
            let mut p = packet(mac, 6, COOKIE, &[53, 1, 1, 52, 1, 3], true);
            for b in p.iter_mut().take(236).skip(44) {
                *b = 0xff - 1; // sname/file full of a bogus option code with no length
            }
            p
        }),
        (
            "client id option of length 0",
            packet(mac, 6, COOKIE, &[53, 1, 1, 61, 0], true),
        ),
        (
            "requested ip of length 3",
            packet(mac, 6, COOKIE, &[53, 1, 3, 50, 3, 1, 2, 3], true),
        ),
        ("BOOTREPLY sent to the server", {
            let mut p = good.clone();
            p[0] = 2;
            p
        }),
        ("huge hops with giaddr", {
            let mut p = good.clone();
            p[3] = 255;
            p[24..28].copy_from_slice(&[198, 18, 250, 1]);
            p
        }),
        ("4000 bytes of pad", {
            let mut p = packet(mac, 6, COOKIE, &discover, false);
            p.resize(4000, 0);
            p
        }),
    ];
    // pseudo-random junk, fixed seed
    let mut x: u32 = 2544;
    for n in [50usize, 300, 548, 1400] {
        let junk: Vec<u8> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x & 0xff) as u8
            })
            .collect();
        v.push(("random junk", junk.clone()));
        let mut with_cookie = junk;
        if with_cookie.len() > 240 {
            with_cookie[236..240].copy_from_slice(&COOKIE);
            with_cookie[0] = 1;
        }
        v.push(("random junk with cookie", with_cookie));
    }
    v
}

#[test]
fn malformed_packets_do_not_hurt() {
    if !gate!() {
        return;
    }
    let lab = Lab::new();
    let cfg = Cfg::for_lab(&lab);
    let mut srv = lab.start_server(&cfg.render());
    let me = lab.ip(2);
    lab.add_client_addr(&format!("{me}/24"));
    let mac = [0x02, 0x1b, 0xee, 0, 0, 1];
    let cases = malformed(mac);
    let payloads: Vec<Vec<u8>> = cases.iter().map(|c| c.1.clone()).collect();
    let src: SocketAddrV4 = format!("{me}:68").parse().unwrap();
    let dsts: Vec<SocketAddrV4> = vec![
        format!("{}:67", lab.srv_ip).parse().unwrap(),
        format!("{}:67", lab.net.broadcast()).parse().unwrap(),
    ];
    // twice, so a crash on the first round cannot hide behind a slow restart
    for round in 0..2 {
        let o = send_from_ns(&lab.cli_ns, src, &dsts, &payloads);
        assert!(o.ok(), "raw sender failed: {}", o.all());
        let sent = o.stdout.lines().filter(|l| l.starts_with("SENT")).count();
        assert!(
            sent >= payloads.len(),
            "round {round}: only {sent} datagrams sent: {}",
            o.all()
        );
        assert!(
            srv.alive(),
            "leased died on malformed input (round {round}); log:\n{}",
            srv.log()
        );
        // the server must not answer garbage as if it were a DISCOVER from the zero MAC etc.
        for l in o.stdout.lines().filter(|l| l.starts_with("REPLY")) {
            eprintln!("note: reply to a malformed datagram: {l}");
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        srv.alive(),
        "leased died on malformed input; log:\n{}",
        srv.log()
    );
    assert!(
        !srv.log().contains("panicked"),
        "panic in log:\n{}",
        srv.log()
    );

    // no lease for the zero MAC
    let leases = srv.leases();
    assert!(
        leases.iter().all(|l| l.mac != "00:00:00:00:00:00"),
        "lease for the zero chaddr: {leases:#?}"
    );

    // the next good client is served
    let good = lab.mac(10, 1);
    let p = lab.probe(&ProbeOpts::mac(&good));
    assert_eq!(
        p.code(),
        Some(PROBE_ACK),
        "good client after malformed packets: {}\nlog:\n{}",
        p.diag(),
        srv.log()
    );
    wait_bound(&srv, &good, p.ip().expect("ip"), "good client", |_| true);
}

#[test]
fn bad_config_on_sighup_keeps_old_config() {
    if !gate!() {
        return;
    }
    let lab = Lab::new();
    let cfg = Cfg::for_lab(&lab);
    let mut srv = lab.start_server(&cfg.render());
    let p = lab.probe(&ProbeOpts::mac(&lab.mac(11, 1)));
    assert_eq!(
        p.code(),
        Some(PROBE_ACK),
        "{}\nlog:\n{}",
        p.diag(),
        srv.log()
    );

    // an error on a known line: lease_time is not a number
    let good_text = cfg.render();
    let bad_text = good_text.replacen(
        &format!("lease_time = {}", cfg.lease_time),
        "lease_time = \"soon\"",
        1,
    );
    assert_ne!(bad_text, good_text);
    let bad_line = bad_text
        .lines()
        .position(|l| l.contains("\"soon\""))
        .unwrap()
        + 1;
    srv.write_config(&bad_text);
    let log_len = srv.log().len();
    srv.sighup();
    let path = srv.cfg_path.display().to_string();
    let want = format!("{path}:{bad_line}:");
    let line = srv.wait_log(Duration::from_secs(5), |l| l.contains(&want));
    assert!(
        line.is_some(),
        "no `{want}<col>` error after SIGHUP with a bad config; log:\n{}",
        &srv.log()[log_len..]
    );
    let line = line.unwrap();
    let col = line
        .split(&want)
        .nth(1)
        .unwrap_or("")
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>();
    assert!(!col.is_empty(), "no column after {want}: {line}");
    assert!(
        srv.alive(),
        "bad config on SIGHUP killed the server; log:\n{}",
        srv.log()
    );

    // still serving, under the old config
    let m2 = lab.mac(11, 2);
    let p = lab.probe(&ProbeOpts::mac(&m2));
    assert_eq!(
        p.code(),
        Some(PROBE_ACK),
        "not serving after a bad reload: {}\nlog:\n{}",
        p.diag(),
        srv.log()
    );
    let ip2 = p.ip().expect("ip");
    assert!(super::interop::in_pool(&cfg, ip2));
    wait_bound(&srv, &m2, ip2, "after bad reload", |_| true);

    // a valid change takes effect: a new reservation
    let m3 = lab.mac(11, 3);
    let cfg2 = cfg.clone().reserve(&m3, lab.ip(33));
    srv.write_config(&cfg2.render());
    srv.sighup();
    let mut got = None;
    let end = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < end {
        let p = lab.probe(&ProbeOpts {
            timeout: Some(2),
            ..ProbeOpts::mac(&m3)
        });
        got = p.ip();
        if got == Some(lab.ip(33)) {
            break;
        }
        // a client that got a pool address first: give it back so the retry is clean
        if p.code() == Some(PROBE_ACK) {
            let _ = lab.probe(&ProbeOpts {
                release: true,
                timeout: Some(2),
                ..ProbeOpts::mac(&m3)
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        got,
        Some(lab.ip(33)),
        "new reservation not in effect after SIGHUP; log:\n{}",
        srv.log()
    );
    wait_bound(&srv, &m3, lab.ip(33), "reservation after reload", |_| true);
    assert!(srv.alive());
}

#[test]
fn reloads_under_load_lose_nothing() {
    if !gate!("perfdhcp") {
        return;
    }
    let _g = super::load::heavy();
    let lab = Lab::new();
    let mut cfg = Cfg::for_lab(&lab);
    cfg.pools = vec![(lab.ip(20), lab.ip(250))];
    cfg.lease_time = 3600;
    lab.add_client_addr(&format!("{}/24", lab.ip(2)));
    let mut srv = lab.start_server(&cfg.render());
    let a = crate::argv![
        crate::support::proc::bin("perfdhcp"),
        "-4",
        "-l",
        crate::support::lab::CLI_IF,
        "-r",
        50,
        "-R",
        200,
        "-n",
        200,
        "-p",
        10,
        "-W",
        "2000000",
        "-g",
        "single",
        "-b",
        "mac=02:ee:00:00:00:00",
        lab.srv_ip
    ];
    let mut perf = crate::support::proc::Proc::spawn(
        "perfdhcp",
        Some(&lab.cli_ns),
        &a,
        &lab.path("perfdhcp.out"),
        &[],
    );
    // alternate two valid configs (a reservation comes and goes) while the load runs
    let with = cfg.clone().reserve(&lab.mac(16, 1), lab.ip(10)).render();
    let without = cfg.render();
    let mut n = 0;
    while perf.alive() && n < 40 {
        srv.write_config(if n % 2 == 0 { &with } else { &without });
        srv.sighup();
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        perf.wait_timeout(Duration::from_secs(20)).is_some(),
        "perfdhcp did not finish"
    );
    let st = crate::support::clients::parse_perfdhcp(&perf.output());
    assert!(
        srv.alive(),
        "server died during reloads; log:\n{}",
        super::load::tail(&srv.log(), 30)
    );
    assert!(n >= 10, "only {n} reloads happened during the load");
    let reloads = srv
        .log()
        .lines()
        .filter(|l| l.contains("config reloaded"))
        .count();
    assert!(
        reloads >= 10,
        "{reloads} `config reloaded` lines for {n} SIGHUPs"
    );
    assert_eq!(
        st.ra_rcvd,
        200,
        "DORA exchanges completed during {n} reloads: {st:?}\n{}",
        perf.output()
    );
    let bound = srv
        .leases()
        .into_iter()
        .filter(|l| l.state == "bound" && l.mac.starts_with("02:ee:"))
        .count();
    assert_eq!(bound, 200, "bound leases of the perfdhcp clients");
}
