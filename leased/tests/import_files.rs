//! `leased import kea|dnsmasq|dhcplane` on files, no network: the seeds' and realistic
//! configs import, the result passes `leased check`, every construct that does not map is
//! listed (on stderr and at the top of the written file), the lease store holds what the lease
//! file says (the last line of an address wins, ended leases younger than the sticky window
//! are kept, malformed lines are counted and skipped), nothing is overwritten without
//! `--force`, and a million-line Kea lease file is imported with flat memory (peak RSS of the
//! importer read from /proc, compared with a run ten times smaller). Fixtures are built
//! around the real clock, so nothing depends on the date.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "ops/common.rs"]
mod common;

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, leased, text, wall_clock};
use leased_core::LeaseState;
use leased_store::EmbeddedStore;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/import/tests/fixtures")
        .join(name)
}

/// `leased import SOURCE ARGS… --out OUT --store STORE`; (exit code, stdout, stderr).
fn import(source: &str, args: &[&str], out: &Path, store: &Path) -> (i32, String, String) {
    let mut a = vec!["import", source];
    a.extend_from_slice(args);
    let (o, s) = (out.to_str().unwrap(), store.to_str().unwrap());
    a.extend_from_slice(&["--out", o, "--store", s]);
    let r = leased(&a, &[]);
    let (stdout, stderr) = text(&r);
    (r.status.code().unwrap_or(-1), stdout, stderr)
}

fn check_ok(out: &Path) -> String {
    let o = leased(&["check", "-c", out.to_str().unwrap()], &[]);
    let (stdout, stderr) = text(&o);
    assert!(
        o.status.success(),
        "leased check refused the import:\n{stdout}{stderr}\n{}",
        std::fs::read_to_string(out).unwrap_or_default()
    );
    stdout
}

#[test]
fn dhcplane_seed_configs_import_and_check() {
    let now = wall_clock();
    for (name, reservations) in [("dhcplane-full.json", 1), ("dhcplane-example.json", 1)] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        std::fs::copy(fixture(name), &config).unwrap();
        // The lease DB as dhcplane writes it (ByIP/ByMAC; an older version's RFC 3339 time).
        let leases = dir.path().join("leases.json");
        let lease = |ip: &str, mac: &str, expiry: serde_json::Value| {
            serde_json::json!({"mac": mac, "ip": ip, "hostname": "h", "allocated_at": now - 600,
                               "expiry": expiry, "first_seen": now - 86_400})
        };
        let db = serde_json::json!({
            "ByIP": {
                "192.168.178.50": lease("192.168.178.50", "02:00:00:00:00:50", (now + 3600).into()),
                "192.168.178.51": lease("192.168.178.51", "02:00:00:00:00:51", (now - 60).into()),
                "192.168.178.52": lease("192.168.178.52", "02:00:00:00:00:52", (now - 10 * 86_400).into()),
                "192.168.178.53": lease("192.168.178.53", "02:00:00:00:00:53", "2099-01-01T00:00:00Z".into()),
                "192.168.178.54": lease("192.168.178.54", "not-a-mac", (now + 3600).into()),
                "10.0.0.1": lease("10.0.0.1", "02:00:00:00:00:01", (now + 3600).into()),
            },
            "ByMAC": {}
        });
        std::fs::write(&leases, db.to_string()).unwrap();
        let out = dir.path().join("leased.toml");
        let store = dir.path().join("leases.db");
        let args = [
            "--config",
            config.to_str().unwrap(),
            "--leases",
            leases.to_str().unwrap(),
        ];
        let (code, stdout, stderr) = import("dhcplane", &args, &out, &store);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(
            stdout.contains(&format!(
                "imported from dhcplane: 1 subnets, {reservations} reservations"
            )),
            "{stdout}"
        );
        // Every key without a leased counterpart is listed, on stderr and in the file.
        let written = std::fs::read_to_string(&out).unwrap();
        for key in [
            "logging",
            "equipment_types",
            "management_types",
            "console_max_lines",
        ] {
            assert!(
                stderr.contains(&format!("not mapped: {key}: ")),
                "{key}: {stderr}"
            );
            assert!(
                written.contains(&format!("#   - {key}: ")),
                "{key}: {written}"
            );
        }
        assert!(
            stdout.contains("2 active leases") && stdout.contains("1 ended leases kept"),
            "{stdout}"
        );
        assert!(stdout.contains("1 outside the subnets"), "{stdout}");
        assert!(
            stdout.contains("1 ended long ago") && stdout.contains("1 malformed"),
            "{stdout}"
        );
        assert!(stderr.contains("not-a-mac"), "{stderr}");
        check_ok(&out);
        let c = leased_config::load_file(&out).unwrap();
        let s = &c.network.subnets[0];
        assert_eq!(s.network.to_string(), "192.168.178.0/24");
        assert_eq!(s.routers, [Ipv4Addr::new(192, 168, 178, 1)]);
        assert_eq!(s.exclusions.len(), 1);
        let r = &s.reservations[0];
        assert_eq!(r.ip, Ipv4Addr::new(192, 168, 178, 10));
        assert!(
            r.metadata
                .note
                .as_deref()
                .is_some_and(|n| n.contains("printer"))
        );
        assert_eq!(c.network.server.lease_time, 86_400);
        if name == "dhcplane-full.json" {
            assert_eq!(r.metadata.manufacturer.as_deref(), Some("HP"));
            assert_eq!(r.metadata.first_seen, Some(1_725_550_000));
            assert_eq!(c.network.banned_macs.len(), 1);
            assert_eq!(c.network.device_overrides.len(), 1);
            assert!(c.rogue_servers.enabled);
            assert!(c.network.options.values.contains_key(&121), "static routes");
            assert!(c.network.options.values.contains_key(&43), "vendor option");
        }
        let mut got = EmbeddedStore::read_only(&store).unwrap();
        got.sort_by_key(|l| l.ip);
        let states: Vec<(String, LeaseState)> =
            got.iter().map(|l| (l.ip.to_string(), l.state)).collect();
        assert_eq!(
            states,
            [
                ("192.168.178.50".to_string(), LeaseState::Bound),
                ("192.168.178.51".to_string(), LeaseState::Expired),
                ("192.168.178.53".to_string(), LeaseState::Bound),
            ]
        );
        assert_eq!(got[0].hostname.as_deref(), Some("h"));
        assert_eq!(got[0].first_seen.0, now - 86_400);
        assert_eq!(got[0].client_id.0, [1, 2, 0, 0, 0, 0, 0x50]);
        // No second import over it without --force; with it, the store is added to.
        let (code, _, stderr) = import("dhcplane", &args, &out, &store);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("--force"), "{stderr}");
        let mut forced = args.to_vec();
        forced.push("--force");
        let (code, stdout, stderr) = import("dhcplane", &forced, &out, &store);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert_eq!(EmbeddedStore::read_only(&store).unwrap().len(), 3);
    }
}

/// A dhcplane config whose reservations live in a separate file (newer dhcplane), found
/// beside the config by its default name.
#[test]
fn dhcplane_reservations_file_beside_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dhcplane.config");
    std::fs::write(
        &config,
        r#"{"interface": "", "server_ip": "198.18.0.1", "subnet_cidr": "198.18.0.0/24",
            "gateway": "198.18.0.1", "pools": [{"start": "198.18.0.50", "end": "198.18.0.99"}],
            "lease_seconds": 0, "authoritative": false,
            "vendor_class_overrides": {"PXEClient": {"bootfile_name": "ipxe.efi"}}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("dhcplane.reservations"),
        r#"{"aa-bb-cc-dd-ee-01": {"ip": "198.18.0.10", "note": "cam"}, "aabbccddee02": "198.18.0.11"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("dhcplane.leases"),
        r#"{"ByIP": {}, "ByMAC": {}}"#,
    )
    .unwrap();
    let out = dir.path().join("leased.toml");
    let store = dir.path().join("leases.db");
    let (code, stdout, stderr) = import(
        "dhcplane",
        &["--config", config.to_str().unwrap()],
        &out,
        &store,
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("2 reservations, 1 classes"), "{stdout}");
    check_ok(&out);
    let c = leased_config::load_file(&out).unwrap();
    assert!(!c.network.server.authoritative);
    assert_eq!(
        c.network.server.lease_time, 86_400,
        "0 means dhcplane's default"
    );
    assert_eq!(
        c.network.classes[0].matcher.vendor_class.as_deref(),
        Some("PXEClient")
    );
}

const KEA_SUBNETS: [&str; 3] = ["198.18.0.0/24", "198.18.2.0/24", "198.18.3.0/24"];

#[test]
fn kea_config_and_csv_import() {
    let now = wall_clock();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kea-dhcp4.conf");
    std::fs::copy(fixture("kea-dhcp4.conf"), &config).unwrap();
    let csv = dir.path().join("kea-leases4.csv");
    let header = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n";
    let line = |ip: &str, n: u8, valid: u64, expire: u64, state: u8| {
        format!("{ip},02:00:00:00:01:{n:02x},,{valid},{expire},1,0,0,host-{n},{state},\n")
    };
    // An interrupted lease file cleanup left .2 (older) and .1; Kea reads them first.
    std::fs::write(
        dir.path().join("kea-leases4.csv.2"),
        format!("{header}{}", line("198.18.0.100", 1, 4000, now + 100, 0)),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("kea-leases4.csv.1"),
        format!("{header}{}", line("198.18.0.101", 2, 4000, now + 100, 0)),
    )
    .unwrap();
    let mut body = String::from(header);
    // .100 renewed twice: the last line wins.
    body += &line("198.18.0.100", 1, 4000, now + 2000, 0);
    body += &line("198.18.0.100", 1, 4000, now + 3000, 0);
    // .101 deleted (valid lifetime 0).
    body += &line("198.18.0.101", 2, 0, now - 5, 0);
    // .102 declined, .103 released a minute ago, .104 expired a week ago.
    body += &line("198.18.0.102", 3, 3600, now + 3000, 1);
    body += &line("198.18.0.103", 4, 4000, now - 60, 3);
    body += &line("198.18.0.104", 5, 4000, now - 7 * 86_400, 0);
    // In a shared-network subnet, with relay data; one outside every subnet; garbage.
    body += &format!(
        "198.18.3.10,02:00:00:00:01:06,01:02:00:00:00:01:06,4000,{},3,0,0,,0,{{ \"ISC\": {{ \"relay-agent-info\": \"0x01057377312f37\" }} }}\n",
        now + 3000
    );
    body += &line("10.1.1.1", 7, 4000, now + 3000, 0);
    body += "198.18.0.105,zz,,4000,1,1,0,0,,0,\n";
    std::fs::write(&csv, body).unwrap();
    let out = dir.path().join("leased.toml");
    let store = dir.path().join("leases.db");
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--leases",
        csv.to_str().unwrap(),
    ];
    let (code, stdout, stderr) = import("kea", &args, &out, &store);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("imported from Kea: 3 subnets, 5 reservations, 2 classes"),
        "{stdout}"
    );
    // What does not map is listed, each with its path in the Kea file.
    for at in [
        "Dhcp6",
        "Dhcp4.loggers",
        "Dhcp4.control-socket",
        "Dhcp4.hooks-libraries[1]",
        "Dhcp4.client-classes[2]",
        "Dhcp4.subnet4[0].reservations[4]",
        "Dhcp4.subnet4[0].reservations[5]",
        "Dhcp4.subnet4[0].reservations[6]",
        "Dhcp4.subnet4[0].ddns-send-updates",
        "Dhcp4.option-data[6]",
        "Dhcp4.option-data[7]",
        "Dhcp4.shared-networks[0].subnet4[1].user-context",
    ] {
        assert!(
            stderr.contains(&format!("not mapped: {at}: ")),
            "{at}:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("198.18.0.1 is a router"),
        "the loader's reason: {stderr}"
    );
    assert!(
        stdout.contains("2 active leases, 1 declined in quarantine and 2 ended leases kept"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 outside the subnets") && stdout.contains("1 malformed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("kea-leases4.csv.2, "),
        "the LFC files are read: {stdout}"
    );
    check_ok(&out);
    let c = leased_config::load_file(&out).unwrap();
    let nets: Vec<String> = c
        .network
        .subnets
        .iter()
        .map(|s| s.network.to_string())
        .collect();
    assert_eq!(nets, KEA_SUBNETS);
    assert_eq!(
        c.network.subnets[1].shared_network.as_deref(),
        Some("campus")
    );
    assert_eq!(c.network.subnets[2].interface.as_deref(), Some("eth2"));
    assert_eq!(c.network.subnets[0].lease_time, Some(3000));
    assert_eq!(
        (c.network.server.lease_time, c.network.server.renewal_time),
        (4000, Some(1000))
    );
    assert!(c.network.server.authoritative);
    assert_eq!(
        c.network.classes[0].matcher.vendor_class.as_deref(),
        Some("PXEClient*")
    );
    assert!(c.network.classes[0].pool.is_some());
    let keys: Vec<String> = c
        .network
        .subnets
        .iter()
        .flat_map(|s| &s.reservations)
        .map(|r| format!("{:?}", r.key))
        .collect();
    assert!(keys.iter().any(|k| k.starts_with("CircuitId")), "{keys:?}");
    assert!(
        keys.iter().any(|k| k.starts_with("RemoteId")),
        "flex-id on relay4[2]: {keys:?}"
    );
    assert!(keys.iter().any(|k| k.starts_with("ClientId")), "{keys:?}");
    let mut got = EmbeddedStore::read_only(&store).unwrap();
    got.sort_by_key(|l| l.ip);
    let states: Vec<(String, LeaseState)> =
        got.iter().map(|l| (l.ip.to_string(), l.state)).collect();
    assert_eq!(
        states,
        [
            ("198.18.0.100".to_string(), LeaseState::Bound),
            ("198.18.0.101".to_string(), LeaseState::Released),
            ("198.18.0.102".to_string(), LeaseState::Declined),
            ("198.18.0.103".to_string(), LeaseState::Released),
            ("198.18.3.10".to_string(), LeaseState::Bound),
        ]
    );
    assert_eq!(got[0].expires.0, now + 3000);
    assert_eq!(got[0].starts.0, now + 3000 - 4000);
    assert_eq!(got[0].hostname.as_deref(), Some("host-1"));
    assert_eq!(got[4].circuit_id.as_deref(), Some(&b"sw1/7"[..]));
    assert_eq!(got[4].client_id.0, [1, 2, 0, 0, 0, 1, 6]);
}

#[test]
fn dnsmasq_config_and_leases_import() {
    let now = wall_clock();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dnsmasq.conf");
    std::fs::copy(fixture("dnsmasq.conf"), &conf).unwrap();
    let leases = dir.path().join("dnsmasq.leases");
    std::fs::write(
        &leases,
        format!(
            "{} 02:00:00:00:02:01 198.18.0.100 laptop 01:02:00:00:00:02:01\n\
             0 02:00:00:00:02:02 198.18.1.60 * *\n\
             {} 02:00:00:00:02:03 198.18.0.101 * *\n\
             duid 00:01:00:01:2c:00:00:00:02:00:00:00:00:01\n\
             {} 02:00:00:00:02:04 fd00::10 * 00:01:00:01\n",
            now + 600,
            now - 30 * 86_400,
            now + 600
        ),
    )
    .unwrap();
    let out = dir.path().join("leased.toml");
    let store = dir.path().join("leases.db");
    let args = [
        "--conf",
        conf.to_str().unwrap(),
        "--leases",
        leases.to_str().unwrap(),
    ];
    let (code, stdout, stderr) = import("dnsmasq", &args, &out, &store);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("3 subnets, 3 reservations, 1 classes, 1 banned MACs"),
        "{stdout}"
    );
    let name = conf.display().to_string();
    for line in [4, 16, 21, 22, 23, 26, 28, 29, 30, 31, 32, 33] {
        assert!(
            stderr.contains(&format!("not mapped: {name}:{line}: ")),
            "line {line}:\n{stderr}"
        );
    }
    assert!(stdout.contains("2 active leases"), "{stdout}");
    assert!(
        stdout.contains("1 ended long ago") && stdout.contains("1 malformed"),
        "{stdout}"
    );
    check_ok(&out);
    let c = leased_config::load_file(&out).unwrap();
    assert!(c.network.server.authoritative);
    assert_eq!(c.process.interfaces, ["eth1"]);
    let s = &c.network.subnets[0];
    assert_eq!(s.lease_time, Some(43_200));
    assert_eq!(s.routers, [Ipv4Addr::new(198, 18, 0, 1)]);
    assert_eq!(s.pools.len(), 3);
    assert_eq!(c.network.subnets[1].lease_time, Some(21_600));
    assert_eq!(
        c.network.classes[0].matcher.vendor_class.as_deref(),
        Some("*Polycom*")
    );
    assert_eq!(c.network.banned_macs.len(), 1);
    let got = EmbeddedStore::read_only(&store).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].hostname.as_deref(), Some("laptop"));
    assert_eq!(got[0].client_id.0, [1, 2, 0, 0, 0, 2, 1]);
    assert!(got[1].expires.0 > now + 365 * 86_400, "infinite lease");
}

/// A config with nothing to serve, or one that does not parse, is refused and nothing is
/// written.
#[test]
fn import_refuses_what_would_not_load_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kea.json");
    std::fs::write(&config, r#"{"Dhcp4": {"subnet4": []}}"#).unwrap();
    let csv = dir.path().join("l.csv");
    std::fs::write(&csv, "address,hwaddr,client_id,valid_lifetime,expire\n").unwrap();
    let out = dir.path().join("leased.toml");
    let store = dir.path().join("leases.db");
    let (code, _, stderr) = import(
        "kea",
        &[
            "--config",
            config.to_str().unwrap(),
            "--leases",
            csv.to_str().unwrap(),
        ],
        &out,
        &store,
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no subnet"), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(!out.exists() && !store.exists());
    std::fs::write(&config, "{ \"Dhcp4\": { \"subnet4\": [ } }").unwrap();
    let (code, _, stderr) = import(
        "kea",
        &[
            "--config",
            config.to_str().unwrap(),
            "--leases",
            csv.to_str().unwrap(),
        ],
        &out,
        &store,
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("kea.json:1:"), "{stderr}");
    assert!(!out.exists() && !store.exists());
}

/// Writes a Kea CSV of `lines` lines over the 131,070 addresses of 198.18.0.0/15: every
/// address renewed again and again, one line in 64 a deletion, one in 97 a decline.
fn million_csv(path: &Path, lines: u64, now: u64) -> u64 {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(
        w,
        "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id"
    )
    .unwrap();
    const ADDRS: u64 = 131_070;
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 1));
    for i in 0..lines {
        let n = i % ADDRS;
        let ip = Ipv4Addr::from(base + n as u32);
        let m = n.to_be_bytes();
        let (valid, state) = if i % 64 == 63 {
            (0, 0)
        } else if i % 97 == 96 {
            (3600, 1)
        } else {
            (3600, 0)
        };
        writeln!(
            w,
            "{ip},02:00:00:{:02x}:{:02x}:{:02x},,{valid},{},1,0,0,h{n},{state},,0",
            m[5],
            m[6],
            m[7],
            now + 3000 + i % 500
        )
        .unwrap();
    }
    w.flush().unwrap();
    lines.min(ADDRS)
}

/// Runs an import as a child and samples its peak RSS (VmHWM) from /proc while it runs;
/// returns (stdout, the child's own report of its peak, the largest sample), in KiB.
fn import_measured(dir: &Path, csv: &Path, tag: &str) -> (String, u64, u64) {
    let out = dir.join(format!("{tag}.toml"));
    let store = dir.join(format!("{tag}.db"));
    let mut child = Command::new(BIN)
        .args(["import", "kea", "--config"])
        .arg(dir.join("kea.json"))
        .arg("--leases")
        .arg(csv)
        .arg("--out")
        .arg(&out)
        .arg("--store")
        .arg(&store)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut sampled = 0u64;
    let t0 = Instant::now();
    let limit = Duration::from_secs(600);
    loop {
        if let Some(kib) = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            sampled = sampled.max(kib);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            t0.elapsed() < limit,
            "the import of {tag} ran over {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}{stderr}");
    let reported: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("peak memory: "))
        .and_then(|v| v.trim_end_matches(" KiB").parse().ok())
        .unwrap_or_else(|| panic!("no peak memory line: {stdout}"));
    println!(
        "{tag}: {:.1} s, peak RSS {reported} KiB (sampled {sampled} KiB), journal {} bytes",
        t0.elapsed().as_secs_f64(),
        std::fs::metadata(&store).map(|m| m.len()).unwrap_or(0)
    );
    (stdout, reported, sampled)
}

#[test]
fn a_million_kea_lease_lines_import_in_bounded_memory() {
    let now = wall_clock();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kea.json"),
        r#"{ "Dhcp4": { "valid-lifetime": 3600, "subnet4": [ { "id": 1, "subnet": "198.18.0.0/15",
            "pools": [ { "pool": "198.18.0.1 - 198.19.255.254" } ] } ] } }"#,
    )
    .unwrap();
    let small = dir.path().join("small.csv");
    let big = dir.path().join("big.csv");
    let small_live = million_csv(&small, 100_000, now);
    let big_live = million_csv(&big, 1_000_000, now);
    let (s_out, s_peak, s_sampled) = import_measured(dir.path(), &small, "small");
    let (b_out, b_peak, b_sampled) = import_measured(dir.path(), &big, "big");
    assert!(s_out.contains("100000 records read"), "{s_out}");
    assert!(b_out.contains("1000000 records read"), "{b_out}");
    // The importer's own VmHWM at its end and ours sampled while it ran: take the larger.
    let (s_peak, b_peak) = (s_peak.max(s_sampled), b_peak.max(b_sampled));
    // Ten times the lines and seven times the distinct leases, and the same memory: nothing
    // grows with the file. (Holding a million lease records would take hundreds of MiB.)
    assert!(
        b_peak < 64 * 1024,
        "importing a million lines peaked at {b_peak} KiB"
    );
    assert!(
        b_peak < s_peak + 8 * 1024,
        "a million lines peaked at {b_peak} KiB, 100,000 at {s_peak} KiB"
    );
    // And every live lease arrived, the last line of each address winning.
    let got = EmbeddedStore::read_only(&dir.path().join("big.db")).unwrap();
    let bound = got.iter().filter(|l| l.state == LeaseState::Bound).count() as u64;
    let small_got = EmbeddedStore::read_only(&dir.path().join("small.db")).unwrap();
    assert_eq!(small_got.len() as u64, small_live);
    assert_eq!(got.len() as u64, big_live);
    let line_of_last = |n: u64| n + (999_999 - n) / 131_070 * 131_070;
    let expect_bound = (0..big_live)
        .filter(|n| {
            let i = line_of_last(*n);
            i % 64 != 63 && i % 97 != 96
        })
        .count() as u64;
    assert_eq!(bound, expect_bound);
    assert!(
        b_out.contains(&format!("{expect_bound} active leases")),
        "{b_out}"
    );
}
