//! Checks of the harness itself: labs come up and go away cleanly, clients time out cleanly
//! against a silent network, nothing is left running.

use std::time::{Duration, Instant};

use crate::argv;
use crate::gate;
use crate::support::lab::{CLI_IF, SRV_IF, ns_pids};
use crate::support::proc::run;
use crate::support::{Dhclient, Dhcpcd, Lab, Udhcpc};

fn netns_exists(ns: &str) -> bool {
    let o = run(None, &argv!["ip", "netns", "list"], Duration::from_secs(5));
    o.stdout
        .lines()
        .any(|l| l.split_whitespace().next() == Some(ns))
}

#[test]
fn lab_comes_up_and_is_removed() {
    if !gate!() {
        return;
    }
    let names;
    {
        let lab = Lab::new();
        let extra = lab.add_client();
        names = lab.namespaces();
        assert_eq!(names.len(), 3);
        for ns in &names {
            assert!(netns_exists(ns), "{ns} missing");
        }
        let o = run(
            Some(&lab.srv_ns),
            &argv!["ip", "-4", "-br", "addr", "show", SRV_IF],
            Duration::from_secs(5),
        );
        assert!(
            o.stdout.contains(&format!("{}/24", lab.srv_ip)),
            "{}",
            o.all()
        );
        // IPv6 off on the test links
        let o = run(
            Some(&lab.cli_ns),
            &argv![
                "sysctl",
                "-n",
                format!("net.ipv6.conf.{CLI_IF}.disable_ipv6")
            ],
            Duration::from_secs(5),
        );
        assert_eq!(o.stdout.trim(), "1");
        // L2 works both from cli0 and from the macvlan client
        lab.add_client_addr(&format!("{}/24", lab.ip(2)));
        let o = run(
            Some(&extra.ns),
            &argv![
                "ip",
                "addr",
                "add",
                format!("{}/24", lab.ip(3)),
                "dev",
                CLI_IF
            ],
            Duration::from_secs(5),
        );
        assert!(o.ok(), "{}", o.all());
        let srv = lab.srv_ip.to_string();
        for ns in [&lab.cli_ns, &extra.ns] {
            let o = crate::support::raw::send_from_ns(
                ns,
                format!(
                    "{}:0",
                    if *ns == lab.cli_ns {
                        lab.ip(2)
                    } else {
                        lab.ip(3)
                    }
                )
                .parse()
                .unwrap(),
                &[format!("{srv}:9").parse().unwrap()],
                &[b"hello".to_vec()],
            );
            assert!(
                o.stdout.contains("SENT 5 bytes"),
                "raw helper from {ns}: {}",
                o.all()
            );
        }
        // a process left inside a namespace is stopped by the lab
        let p = std::process::Command::new("ip")
            .args(["netns", "exec", &lab.cli_ns, "sleep", "300"])
            .spawn()
            .unwrap();
        let pid = p.id();
        std::mem::forget(p);
        assert!(
            crate::support::proc::poll(Duration::from_secs(3), || ns_pids(&lab.cli_ns)
                .contains(&pid)
                .then_some(()))
            .is_some()
        );
    }
    for ns in &names {
        assert!(!netns_exists(ns), "{ns} still exists after drop");
    }
}

#[test]
fn clients_time_out_cleanly_against_nothing() {
    if !gate!("dhclient", "udhcpc", "dhcpcd", "unshare") {
        return;
    }
    let lab = Lab::new();
    // udhcpc -n gives up by itself after 3 DISCOVERs 2 s apart
    let mut u = Udhcpc::new(&lab, &lab.cli_ns, CLI_IF, "udhcpc", None);
    let t0 = Instant::now();
    u.start(true, true, &[]);
    let st =
        u.c.proc
            .as_mut()
            .unwrap()
            .wait_timeout(Duration::from_secs(20));
    assert!(
        st.is_some_and(|s| !s.success()),
        "udhcpc should fail without a server: {st:?}\n{}",
        u.c.diag()
    );
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert!(u.c.events().iter().all(|e| e.reason != "bound"));

    let mut d = Dhclient::new(&lab, &lab.cli_ns, CLI_IF, "dhclient", None);
    d.start();
    assert!(
        d.c.wait_event(0, &["BOUND", "REBOOT"], Duration::from_secs(3))
            .is_none()
    );
    assert!(
        d.c.proc.as_mut().unwrap().alive(),
        "dhclient died: {}",
        d.c.diag()
    );
    d.c.stop();

    let mut c = Dhcpcd::new(&lab, &lab.cli_ns, CLI_IF, "dhcpcd", None);
    c.start(true);
    assert!(
        c.c.wait_event(0, &["BOUND", "REBOOT"], Duration::from_secs(3))
            .is_none()
    );
    c.c.stop();
    // dhcpcd's privilege-separated helpers go with it (or the lab stops them on drop)
    let left = crate::support::proc::poll(Duration::from_secs(3), || {
        ns_pids(&lab.cli_ns).is_empty().then_some(())
    });
    if left.is_none() {
        eprintln!(
            "note: processes left in {} after stopping dhcpcd: {:?} (the lab stops them)",
            lab.cli_ns,
            ns_pids(&lab.cli_ns)
        );
    }
    // nothing of dhcpcd's reached the host's /run
    assert!(!std::path::Path::new(&format!("/run/dhcpcd/{CLI_IF}.pid")).exists());
}
