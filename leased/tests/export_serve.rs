//! System test of the billing export end to end (issue 7): `leased serve` with `[export.sonar]`
//! in a namespace, perfdhcp clients through it, and a fake Sonar (this test binary re-run
//! inside the namespace, a plain HTTP server on its loopback) that checks what Sonar's API
//! documents (path, HTTP Basic, JSON shape) and records every item it accepts.
//!
//! It sees every binding of the perfdhcp run exactly once — although it answered 500 while
//! they were made and leased was restarted before it recovered — then every expiry exactly
//! once, and nothing more. The router endpoint of `[api]` takes the MikroTik script's GET
//! (HTTP Basic per router), rejects a wrong secret with 401, and its entry reaches Sonar too.
//! Root and perfdhcp/curl are required (else `SKIP: …`; a failure under `CI=true`).

#![allow(clippy::useless_vec, clippy::unwrap_used)]

#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::clients::{PerfRun, perfdhcp};
use support::lab::CLI_IF;
use support::proc::{Proc, bin, poll, run};
use support::server::leased_bin;
use support::{Cfg, Lab};

/// `addr;record file;control file` for the fake Sonar helper.
const FAKE_ENV: &str = "LEASED_FAKE_SONAR";
const SONAR_PATH: &str = "/api/v1/network/ipam/batch_dynamic_ip_assignment";
/// `Basic base64("sonar-user:sonar-pass")`.
const SONAR_AUTH: &str = "Basic c29uYXItdXNlcjpzb25hci1wYXNz";
const LEASE_TIME: u32 = 20;
const CLIENTS: u32 = 40;

fn mac_ok(s: &str) -> bool {
    s.len() == 17
        && s.split(':').all(|p| {
            p.len() == 2
                && p.chars()
                    .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
        })
}

/// Checks one request; returns the items to record, or the violation.
fn check(path: &str, auth: Option<&str>, body: &[u8]) -> Result<Vec<Value>, String> {
    if path != SONAR_PATH {
        return Err(format!("path {path}"));
    }
    if auth != Some(SONAR_AUTH) {
        return Err(format!("authorization {auth:?}"));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("json: {e}"))?;
    let data = v["data"].as_array().ok_or("no data array")?;
    for it in data {
        let o = it.as_object().ok_or("item not an object")?;
        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
        if keys != ["expired", "ip_address", "mac_address", "remote_id"] {
            return Err(format!("keys {keys:?}"));
        }
        let mac = o["mac_address"].as_str().unwrap_or("");
        if !o["expired"].is_boolean()
            || o["ip_address"]
                .as_str()
                .and_then(|s| s.parse::<std::net::Ipv4Addr>().ok())
                .is_none()
            || !mac_ok(mac)
            || !(o["remote_id"].is_null()
                || o["remote_id"]
                    .as_str()
                    .is_some_and(|r| mac_ok(r) && r != mac))
        {
            return Err(format!("item {it}"));
        }
    }
    Ok(data.clone())
}

/// The fake Sonar: a blocking HTTP/1.1 server, one request per connection. Answers with the
/// status written in the control file (`200`, `500`, or `exit` to stop); records accepted items
/// as JSON lines, violations as `VIOLATION …` lines. Bounded to 5 minutes.
#[test]
fn fake_sonar_helper() {
    let Ok(spec) = std::env::var(FAKE_ENV) else {
        return;
    };
    let mut parts = spec.split(';');
    let addr = parts.next().unwrap().to_string();
    let record = PathBuf::from(parts.next().unwrap());
    let control = PathBuf::from(parts.next().unwrap());
    let listener = TcpListener::bind(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    println!("LISTENING {addr}");
    let end = Instant::now() + Duration::from_secs(300);
    while Instant::now() < end {
        let mode = std::fs::read_to_string(&control).unwrap_or_default();
        if mode.trim() == "exit" {
            return;
        }
        let Ok((stream, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        if r.read_line(&mut line).is_err() {
            continue;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut auth = None;
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((&h, ""));
            match k.to_ascii_lowercase().as_str() {
                "authorization" => auth = Some(v.trim().to_string()),
                "content-length" => len = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
        let mut body = vec![0u8; len];
        let _ = r.read_exact(&mut body);
        let status = if mode.trim() == "200" {
            "200 OK"
        } else {
            "500 Internal Server Error"
        };
        let mut rec = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&record)
            .unwrap();
        match check(&path, auth.as_deref(), &body) {
            Ok(items) if status.starts_with("200") => {
                for it in items {
                    writeln!(rec, "{it}").unwrap();
                }
            }
            Ok(_) => writeln!(rec, "REFUSED").unwrap(),
            Err(e) => writeln!(rec, "VIOLATION {e}").unwrap(),
        }
        let mut s = r.into_inner();
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
    }
}

struct Fake {
    proc: Proc,
    record: PathBuf,
    control: PathBuf,
}

impl Fake {
    fn start(lab: &Lab, addr: &str) -> Fake {
        let record = lab.path("sonar.jsonl");
        let control = lab.path("sonar.mode");
        std::fs::write(&control, "500").unwrap();
        let exe = std::env::current_exe().unwrap();
        let a = argv![
            exe.display(),
            "--exact",
            "fake_sonar_helper",
            "--nocapture",
            "--test-threads=1"
        ];
        let env = [(
            FAKE_ENV,
            format!("{addr};{};{}", record.display(), control.display()),
        )];
        let proc = Proc::spawn(
            "fake sonar",
            Some(&lab.srv_ns),
            &a,
            &lab.path("sonar.out"),
            &env,
        );
        let ok = poll(Duration::from_secs(10), || {
            proc.output().contains("LISTENING").then_some(())
        });
        assert!(ok.is_some(), "fake Sonar did not start: {}", proc.output());
        Fake {
            proc,
            record,
            control,
        }
    }

    fn set(&self, mode: &str) {
        std::fs::write(&self.control, mode).unwrap();
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Accepted items as (ip, mac, expired).
    fn items(&self) -> Vec<(String, String, bool)> {
        self.lines()
            .iter()
            .filter(|l| l.starts_with('{'))
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["ip_address"].as_str().unwrap().to_string(),
                    v["mac_address"].as_str().unwrap().to_string(),
                    v["expired"].as_bool().unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.set("exit");
        if self.proc.wait_timeout(Duration::from_secs(3)).is_none() {
            self.proc.stop(Duration::from_secs(2));
        }
    }
}

fn export_status(cfg: &Path) -> Value {
    let o = run(
        None,
        &argv![
            leased_bin(),
            "export",
            "status",
            "--json",
            "-c",
            cfg.display()
        ],
        Duration::from_secs(10),
    );
    assert!(o.ok(), "export status: {}", o.all());
    serde_json::from_str(&o.stdout).unwrap()
}

fn curl(lab: &Lab, args: &[&str]) -> (String, String) {
    let mut a = argv![
        bin("curl"),
        "-s",
        "-m",
        "5",
        "-o",
        "-",
        "-w",
        "\n%{http_code}"
    ];
    a.extend(args.iter().map(|s| s.to_string()));
    let o = run(Some(&lab.srv_ns), &a, Duration::from_secs(10));
    let (body, code) = o.stdout.rsplit_once('\n').unwrap_or((&o.stdout, ""));
    (body.to_string(), code.to_string())
}

#[test]
fn perfdhcp_bindings_reach_sonar_once_through_failure_and_restart() {
    if !gate!("perfdhcp", "curl") {
        return;
    }
    let lab = Lab::new();
    let fake = Fake::start(&lab, "127.0.0.1:18080");
    let hash = leased_export::router::hash_password("router-secret").unwrap();
    let mut cfg = Cfg::for_lab(&lab);
    cfg.lease_time = LEASE_TIME;
    cfg.extra = format!(
        r#"
[api]
listen = "127.0.0.1:18067"
keys = ["api-key-0123456789"]

[export]
outbox = "{outbox}"

[export.sonar]
url = "http://127.0.0.1:18080"
username = "sonar-user"
password = "sonar-pass"
interval = 1
timeout = 2
chunk_size = 16

[[export.routers]]
username = "mikrotik-1"
password_hash = "{hash}"
"#,
        outbox = lab.path("outbox").display()
    );
    let mut server = lab.start_server(&cfg.render());
    let cfg_path = server.cfg_path.clone();

    // Phase 1: Sonar answers 500 while perfdhcp binds CLIENTS clients.
    lab.add_client_addr(&format!("{}/24", lab.ip(2)));
    let run_ = PerfRun {
        rate: 50,
        clients: CLIENTS,
        num: CLIENTS,
        secs: 10,
        base_mac: "02:5e:00:00:00:00".into(),
    };
    let (out, stats) = perfdhcp(&lab.cli_ns, CLI_IF, lab.srv_ip, &run_);
    assert!(
        stats.ra_rcvd >= u64::from(CLIENTS) * 9 / 10,
        "perfdhcp: {stats:?}\n{}",
        out.all()
    );
    let acked = stats.ra_rcvd as usize;
    let ok = poll(Duration::from_secs(10), || {
        fake.lines().iter().any(|l| l == "REFUSED").then_some(())
    });
    assert!(ok.is_some(), "no refused upload seen: {:?}", fake.lines());
    let st = export_status(&cfg_path);
    assert!(
        st[0]["queue_depth"].as_u64().unwrap() as usize >= acked,
        "{st}"
    );
    assert!(!st[0]["status"]["last_error"].is_null(), "{st}");

    // Phase 2: leased restarts; then Sonar recovers.
    server.term();
    server.start();
    fake.set("200");
    let ok = poll(Duration::from_secs(30), || {
        (fake.items().iter().filter(|i| !i.2).count() >= acked).then_some(())
    });
    assert!(
        ok.is_some(),
        "bindings not delivered: {} of {acked}",
        fake.items().len()
    );

    // The router script's GET (MikroTik unbind form), wrong secret first.
    let url = "http://127.0.0.1:18067/api/dhcp_assignments?ip_address=198.18.250.9&leased_mac_address=0a:00:3e:b1:45:2b&expired=1";
    let (body, code) = curl(&lab, &["-u", "mikrotik-1:wrong", url]);
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("401", r#"{"message":"Unauthenticated."}"#)
    );
    let (body, code) = curl(&lab, &["-u", "mikrotik-1:router-secret", url]);
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("200", r#"{"success":true}"#)
    );
    // The API's own routes still want their key.
    let (_, code) = curl(&lab, &["http://127.0.0.1:18067/counts"]);
    assert_eq!(code, "401");

    // Phase 3: every binding expires (no renewals from perfdhcp): each reported once.
    let ok = poll(Duration::from_secs(u64::from(LEASE_TIME) + 30), || {
        (fake.items().iter().filter(|i| i.2).count() > acked).then_some(())
    });
    assert!(
        ok.is_some(),
        "expiries not delivered: {:?}",
        fake.items().len()
    );
    std::thread::sleep(Duration::from_secs(4));
    server.term();

    let lines = fake.lines();
    let violations: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("VIOLATION"))
        .collect();
    assert!(violations.is_empty(), "{violations:?}");
    let items = fake.items();
    let mut bound: BTreeMap<&str, usize> = BTreeMap::new();
    let mut expired: BTreeMap<&str, usize> = BTreeMap::new();
    for (ip, _, e) in &items {
        *if *e { &mut expired } else { &mut bound }
            .entry(ip.as_str())
            .or_default() += 1;
    }
    assert_eq!(bound.len(), acked, "every binding: {bound:?}");
    assert!(
        bound.values().all(|n| *n == 1),
        "each binding once: {bound:?}"
    );
    assert!(
        expired.contains_key("198.18.250.9"),
        "router entry not delivered"
    );
    expired.remove("198.18.250.9");
    assert_eq!(expired.len(), acked, "every expiry: {expired:?}");
    assert!(
        expired.values().all(|n| *n == 1),
        "each expiry once: {expired:?}"
    );
    let st = export_status(&cfg_path);
    assert_eq!(st[0]["queue_depth"], 0, "{st}");
}
