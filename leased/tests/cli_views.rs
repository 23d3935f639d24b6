//! The CLI views and config edits without a running server: `leased stats` (summary,
//! `--details`, `--grid` with colours off) over a lease store of known content, compared with
//! whole expected tables; `leased manage add/remove` keeping the file's comments; `leased
//! reload` refusing an invalid config; `leased import isc` round trip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "ops/common.rs"]
mod common;

use std::net::Ipv4Addr;
use std::path::Path;

use common::{leased, text, wall_clock};
use leased_core::{ClientId, HwAddr, Lease, LeaseState, Timestamp};
use leased_store::{EmbeddedStore, LeaseStore};

/// 2026-11-23T10:00:00Z: the reference time of the `stats` tables, which take it through
/// `--now`. Commands that read the clock themselves get fixtures built around the real clock
/// (`common::wall_clock`), so no assertion depends on the day it runs.
const NOW: u64 = 1_795_428_000;

fn lease(
    last: u8,
    mac: u8,
    state: LeaseState,
    host: Option<&str>,
    first: u64,
    starts: u64,
    expires: u64,
) -> Lease {
    let hw = vec![2, 0, 0, 0, 0, mac];
    Lease {
        ip: Ipv4Addr::new(198, 18, 0, last),
        client_id: ClientId(std::iter::once(1).chain(hw.iter().copied()).collect()),
        hwaddr: HwAddr(hw),
        hostname: host.map(String::from),
        state,
        starts: Timestamp(starts),
        expires: Timestamp(expires),
        first_seen: Timestamp(first),
        circuit_id: None,
        remote_id: None,
        subscriber_id: None,
    }
}

const CONFIG: &str = r#"# views test
[store]
path = "STORE"

[banned_macs]
"02:00:00:00:00:bb" = { note = "stolen" }

[[subnets]]
network = "198.18.0.0/28"
routers = ["198.18.0.1"]
pools = ["198.18.0.2-198.18.0.12"]
exclusions = ["198.18.0.12-198.18.0.12"]

# the printer
[[reservations]]
mac = "02:00:00:00:00:aa"
ip = "198.18.0.9"
hostname = "printer"
"#;

/// A store and config whose leases are placed around `now`.
fn setup(dir: &Path, now: u64) -> std::path::PathBuf {
    let store = dir.join("leases.db");
    let mut s = EmbeddedStore::open(&store).unwrap();
    s.load().unwrap();
    s.commit(&[
        lease(
            3,
            1,
            LeaseState::Bound,
            Some("alpha"),
            now - 30,
            now - 30,
            now + 3570,
        ),
        lease(
            10,
            2,
            LeaseState::Bound,
            Some("beta"),
            now - 2 * 86_400,
            now - 600,
            now + 7200,
        ),
        lease(
            5,
            3,
            LeaseState::Expired,
            Some("gamma"),
            now - 10 * 86_400,
            now - 10 * 86_400,
            now - 9 * 86_400,
        ),
        lease(
            4,
            0xbb,
            LeaseState::Bound,
            Some("thief"),
            now - 120,
            now - 120,
            now + 600,
        ),
        lease(
            6,
            5,
            LeaseState::Declined,
            None,
            now - 100,
            now - 100,
            now + 1000,
        ),
        lease(
            2,
            4,
            LeaseState::Released,
            Some("delta"),
            now - 20 * 86_400,
            now - 86_400,
            now - 3600,
        ),
    ])
    .unwrap();
    drop(s);
    let cfg = dir.join("leased.toml");
    std::fs::write(&cfg, CONFIG.replace("STORE", &store.display().to_string())).unwrap();
    cfg
}

fn stats(cfg: &Path, extra: &[&str], env: &[(&str, &str)]) -> String {
    let now = NOW.to_string();
    let mut args = vec!["stats", "-c", cfg.to_str().unwrap(), "--now", &now];
    args.extend_from_slice(extra);
    let o = leased(&args, env);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(err.contains("(leases from the store "), "{err}");
    out
}

#[test]
fn stats_summary_details_and_grid() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), NOW);

    assert_eq!(
        stats(&cfg, &[], &[]),
        "\
Allocations in the last
  1m  1h  24h  7d  30d
  1   2   2    3   5

Leases
  current   3
  expiring  2   (ending within 1h)
  expired   2
"
    );

    assert_eq!(
        stats(&cfg, &["--details"], &[]),
        "\
IP           Type        MAC                AllocatedAt           Elapsed  Remaining  Hostname
198.18.0.0   banned-ip   -                  -                     -        -          network
198.18.0.1   banned-ip   -                  -                     -        -          router
198.18.0.2   unused      -                  -                     -        -          -
198.18.0.3   leased      02:00:00:00:00:01  2026-11-23T09:59:30Z  30s      59m30s     alpha
198.18.0.4   banned-mac  02:00:00:00:00:bb  2026-11-23T09:58:00Z  2m       10m        thief
198.18.0.5   unused      -                  -                     -        -          -
198.18.0.6   banned-ip   -                  2026-11-23T09:58:20Z  1m40s    16m40s     declined
198.18.0.7   unused      -                  -                     -        -          -
198.18.0.8   unused      -                  -                     -        -          -
198.18.0.9   reserved    02:00:00:00:00:aa  -                     -        -          printer
198.18.0.10  leased      02:00:00:00:00:02  2026-11-23T09:50:00Z  10m      2h         beta
198.18.0.11  unused      -                  -                     -        -          -
198.18.0.12  banned-ip   -                  -                     -        -          excluded
198.18.0.15  banned-ip   -                  -                     -        -          broadcast
"
    );

    let grid = stats(&cfg, &["--grid"], &[("NO_COLOR", "1"), ("COLUMNS", "30")]);
    assert_eq!(
        grid,
        "\
198.18.0.0/28
198.18.0.0      XX.LM.X.
198.18.0.8      .RL.X  X
  L leased 2   R reserved 1   M banned-mac 1   X banned-ip 5   . unused 5   ' ' outside 2

"
    );
    // A wider terminal puts the whole /28 on one row.
    let wide = stats(&cfg, &["--grid"], &[("NO_COLOR", "1"), ("COLUMNS", "40")]);
    assert!(
        wide.contains("198.18.0.0      XX.LM.X..RL.X  X\n"),
        "{wide}"
    );
}

#[test]
fn manage_add_and_remove_keep_comments() {
    let dir = tempfile::tempdir().unwrap();
    // `manage add` judges "leased to someone else" by the wall clock.
    let cfg = setup(dir.path(), wall_clock());
    let c = cfg.to_str().unwrap();
    let before = std::fs::read_to_string(&cfg).unwrap();

    let o = leased(
        &[
            "manage",
            "-c",
            c,
            "add",
            "02:00:00:00:00:cc",
            "198.18.0.7",
            "kitchen",
            "display",
        ],
        &[],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("reserved 198.18.0.7 for 02:00:00:00:00:cc"),
        "{out}"
    );
    let after = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        after.starts_with(before.trim_end()),
        "comments and layout kept:\n{after}"
    );
    assert!(
        after.contains("mac = \"02:00:00:00:00:cc\"\nip = \"198.18.0.7\"\n"),
        "{after}"
    );
    assert!(after.contains("note = \"kitchen display\""), "{after}");
    assert!(leased(&["check", "-c", c], &[]).status.success());

    // Leased to another MAC: a warning, and the reservation is written.
    let o = leased(
        &["manage", "-c", c, "add", "dd-00-00-00-00-01", "198.18.0.3"],
        &[],
    );
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("198.18.0.3 is leased to 02:00:00:00:00:01"),
        "{err}"
    );

    // Outside every subnet: a warning, the loader refuses, the file is untouched.
    let kept = std::fs::read_to_string(&cfg).unwrap();
    let o = leased(
        &["manage", "-c", c, "add", "02:00:00:00:00:ee", "198.19.9.9"],
        &[],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("198.19.9.9 lies outside every subnet"),
        "{err}"
    );
    assert!(err.contains("leased.toml:"), "file:line:col errors: {err}");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), kept);

    // A bad MAC never reaches the file.
    let o = leased(&["manage", "-c", c, "add", "nonsense", "198.18.0.8"], &[]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), kept);

    // Remove: the reservation goes, the comments stay.
    let o = leased(&["manage", "-c", c, "remove", "02:00:00:00:00:cc"], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let now = std::fs::read_to_string(&cfg).unwrap();
    assert!(!now.contains("02:00:00:00:00:cc"), "{now}");
    assert!(now.contains("# the printer\n[[reservations]]"), "{now}");
    assert!(now.starts_with("# views test\n"));
    let o = leased(&["manage", "-c", c, "remove", "02:00:00:00:00:cc"], &[]);
    assert!(!o.status.success(), "nothing left to remove");
}

#[test]
fn reload_refuses_an_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    let pid = dir.path().join("leased.pid");
    // A PID file naming this very test process: a refused reload must not signal it (SIGHUP
    // would end the test run).
    std::fs::write(&pid, format!("{}\n", std::process::id())).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "[server]\npid_file = \"{}\"\nlease_time = \"soon\"\n\n[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [\"198.18.1.1-198.18.1.9\"]\n",
            pid.display()
        ),
    )
    .unwrap();
    let o = leased(&["reload", "-c", cfg.to_str().unwrap()], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("refusing to reload"), "{err}");
    assert!(err.contains("bad.toml:3:"), "file:line:col: {err}");
    assert!(err.contains("server.lease_time"), "{err}");
    // No PID file configured and none given: a clear error, exit 2.
    let ok = dir.path().join("ok.toml");
    std::fs::write(
        &ok,
        "[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [\"198.18.0.10-198.18.0.20\"]\n",
    )
    .unwrap();
    let o = leased(&["reload", "-c", ok.to_str().unwrap()], &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("no PID file"), "{err}");
}

const ISC_CONF: &str = "\
option domain-name \"isc.example\";
option domain-name-servers 198.18.0.53;
subnet 198.18.0.0 netmask 255.255.255.0 {
  range 198.18.0.100 198.18.0.149;
  range 198.18.0.140 198.18.0.159;   # overlaps: merged on import
  option routers 198.18.0.1;
  host printer { hardware ethernet 02:00:00:00:11:01; fixed-address 198.18.0.20; option host-name \"printer\"; }
}
shared-network campus {
  subnet 198.18.1.0 netmask 255.255.255.0 {
    pool { range 198.18.1.10 198.18.1.19; }
    option routers 198.18.1.1;
    option ntp-servers 198.18.1.123;
  }
}
host cam { hardware ethernet 02:00:00:00:11:02; fixed-address 198.18.1.5; }
host nowhere { hardware ethernet 02:00:00:00:11:03; fixed-address 10.9.9.9; }
";

/// A leases file around `now`: `STARTED` an hour ago, `ENDED` when that lease ran out, `FUTURE`
/// ten years ahead.
fn isc_leases(now: u64) -> String {
    "\
# hand-made
lease 198.18.0.100 {
  starts STARTED;
  ends FUTURE;
  cltt STARTED;
  binding state active;
  hardware ethernet 02:00:00:00:22:01;
  client-hostname \"one\";
}
lease 198.18.0.101 {
  starts STARTED;
  ends ENDED;
  binding state free;
  hardware ethernet 02:00:00:00:22:02;
}

lease 198.18.1.10 {
  starts STARTED;
  ends never;
  binding state active;
  hardware ethernet 02:00:00:00:22:03;
  uid \"\\001\\002\\000\\000\\000\\\"\\003\";
}
lease 198.18.1.11 {
  # no binding state at all
  starts STARTED;
  hardware ethernet 02:00:00:00:22:04;
  some-unknown-statement 42;
}
lease 198.18.1.12 {
  # no binding state, ends in the future: active, as dhcpd takes it
  starts STARTED;
  ends FUTURE;
  hardware ethernet 02:00:00:00:22:06;
}
lease 198.18.1.13 {
  # no binding state, ended: free
  starts STARTED;
  ends ENDED;
  hardware ethernet 02:00:00:00:22:07;
}
lease 198.18.0.102 {
  binding state active;
  ends FUTURE;
  hardware ethernet 02:00:00:00:22:05;
}
lease 198.18.0.102 {
  binding state released;
  hardware ethernet 02:00:00:00:22:05;
}
"
    .replace("STARTED", &common::isc_time(now - 3600))
    .replace("ENDED", &common::isc_time(now - 1))
    .replace("FUTURE", &common::isc_time(now + 10 * 365 * 86_400))
}

#[test]
fn import_isc_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dhcpd.conf");
    let leases = dir.path().join("dhcpd.leases");
    std::fs::write(&conf, ISC_CONF).unwrap();
    std::fs::write(&leases, isc_leases(wall_clock())).unwrap();
    let out = dir.path().join("leased.toml");
    let store = dir.path().join("leases.db");
    let args = [
        "import",
        "isc",
        "--conf",
        conf.to_str().unwrap(),
        "--leases",
        leases.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ];
    let o = leased(&args, &[]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{stdout}{err}");
    assert!(
        stdout.contains("imported 2 subnets, 2 reservations"),
        "{stdout}"
    );
    assert!(stdout.contains("3 active leases"), "{stdout}");
    assert!(
        err.contains("host nowhere"),
        "the host outside every subnet is named: {err}"
    );
    let cfg = std::fs::read_to_string(&out).unwrap();
    assert!(
        cfg.contains("pools = [\"198.18.0.100-198.18.0.159\"]"),
        "{cfg}"
    );
    assert!(cfg.contains("shared_network = \"campus\""), "{cfg}");
    // The written config is what leased runs.
    let o = leased(&["check", "-c", out.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(
        text(&o).0.contains("(2 subnets, 2 reservations)"),
        "{:?}",
        text(&o)
    );
    let c = leased_config::load_file(&out).unwrap();
    // A host without `option host-name` gets no made-up host name.
    let cam = &c.network.subnets[1].reservations[0];
    assert_eq!(cam.ip, Ipv4Addr::new(198, 18, 1, 5));
    assert_eq!(cam.hostname, None);
    assert_eq!(
        c.network.subnets[0].reservations[0].hostname.as_deref(),
        Some("printer")
    );
    assert_eq!(
        c.network.subnets[0].routers,
        vec![Ipv4Addr::new(198, 18, 0, 1)]
    );
    assert_eq!(
        c.network.subnets[1].shared_network.as_deref(),
        Some("campus")
    );
    assert_eq!(c.store.path, store);
    // The active leases are in the store, with their client ids and host names.
    let mut got = EmbeddedStore::read_only(&store).unwrap();
    got.sort_by_key(|l| l.ip);
    let ips: Vec<String> = got.iter().map(|l| l.ip.to_string()).collect();
    assert_eq!(ips, ["198.18.0.100", "198.18.1.10", "198.18.1.12"]);
    assert_eq!(got[0].hostname.as_deref(), Some("one"));
    assert_eq!(got[0].state, LeaseState::Bound);
    assert_eq!(got[0].client_id.0, vec![1, 2, 0, 0, 0, 0x22, 1]);
    assert_eq!(got[1].client_id.0, vec![1, 2, 0, 0, 0, b'"', 3]);
    // `leased leases` shows them.
    let o = leased(&["leases", "--store", store.to_str().unwrap()], &[]);
    assert!(text(&o).0.contains("02:00:00:00:22:03"));
    // A second import does not overwrite without --force.
    let o = leased(&args, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("--force"));
}

#[test]
fn check_notes_where_sql_slices_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("leased.toml");
    std::fs::write(
        &cfg,
        "[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [\"198.18.0.100-198.18.0.200\"]\n\
         [sql_assignment]\nurl = \"mysql://dhcp@127.0.0.1/pydhcp\"\n\
         slices = [\"option_82_hex:sw_mac:26:40\"]\n\
         [[sql_assignment.queries]]\n\
         sql = \"SELECT ip FROM users WHERE UPPER(mac) = UPPER(:sw_mac)\"\n",
    )
    .unwrap();
    let o = leased(&["check", "-c", cfg.to_str().unwrap()], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("OK: "), "{out}");
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("note: "))
            .collect::<Vec<_>>(),
        [
            "note: sql_assignment slice :sw_mac takes hex digits 26..40 of option_82_hex; a value \
          shorter than 40 hex digits is cut at its end, as in Python (pydhcpdb), and one of 26 \
          hex digits or fewer leaves :sw_mac NULL"
        ],
        "{err}"
    );
}
