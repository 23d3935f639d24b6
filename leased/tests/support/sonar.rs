//! A stand-in for Sonar (the one peer that cannot exist here): a blocking HTTP/1.1 server
//! that checks what Sonar's API documents for
//! `POST /api/v1/network/ipam/batch_dynamic_ip_assignment` (path, HTTP Basic, the JSON shape of
//! every item) and records what it accepts. It runs inside a lab namespace as this test binary
//! re-run with `--exact fake_sonar_helper`: a test file that uses [`Fake`] declares
//!
//! ```ignore
//! #[test]
//! fn fake_sonar_helper() { support::sonar::helper_main() }
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::lab::Lab;
use super::proc::{Proc, poll};
use crate::argv;

/// `addr;record file;control file` for the helper.
const FAKE_ENV: &str = "LEASED_FAKE_SONAR";
const SONAR_PATH: &str = "/api/v1/network/ipam/batch_dynamic_ip_assignment";
/// The credentials the stand-in accepts.
pub const USER: &str = "sonar-user";
pub const PASSWORD: &str = "sonar-pass";
/// `Basic base64("sonar-user:sonar-pass")`.
const SONAR_AUTH: &str = "Basic c29uYXItdXNlcjpzb25hci1wYXNz";

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

/// The helper's body: serves until the control file says `exit` (at most 5 minutes). Without
/// its environment variable it returns at once.
pub fn helper_main() {
    let Ok(spec) = std::env::var(FAKE_ENV) else {
        return;
    };
    let mut parts = spec.split(';');
    let addr = parts.next().unwrap_or_default().to_string();
    let record = PathBuf::from(parts.next().unwrap_or_default());
    let control = PathBuf::from(parts.next().unwrap_or_default());
    let listener = TcpListener::bind(&addr).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
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
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
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
        let mut body = vec![0u8; len.min(16 << 20)];
        let _ = r.read_exact(&mut body);
        let mut rec = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&record)
            .expect("record file");
        let status = match check(&path, auth.as_deref(), &body) {
            Ok(items) => {
                for it in items {
                    let _ = writeln!(rec, "{it}");
                }
                "200 OK"
            }
            Err(e) => {
                let _ = writeln!(rec, "VIOLATION {e}");
                "400 Bad Request"
            }
        };
        let mut s = r.into_inner();
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
    }
}

/// The stand-in, running in a namespace.
pub struct Fake {
    proc: Proc,
    record: PathBuf,
    control: PathBuf,
}

impl Fake {
    /// Starts it in `ns` on `addr` (e.g. `127.0.0.1:8080` in that namespace's loopback).
    pub fn start(lab: &Lab, ns: &str, addr: &str, tag: &str) -> Fake {
        let record = lab.path(&format!("{tag}.jsonl"));
        let control = lab.path(&format!("{tag}.mode"));
        std::fs::write(&control, "run").expect("control file");
        let exe = std::env::current_exe().expect("current exe");
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
            Some(ns),
            &a,
            &lab.path(&format!("{tag}.out")),
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

    /// Every line recorded (items as JSON, `VIOLATION …`).
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Accepted items as (ip, mac, expired).
    pub fn items(&self) -> Vec<(String, String, bool)> {
        self.lines()
            .iter()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                Some((
                    v["ip_address"].as_str()?.to_string(),
                    v["mac_address"].as_str()?.to_string(),
                    v["expired"].as_bool()?,
                ))
            })
            .collect()
    }

    /// Requests that broke Sonar's documented contract.
    pub fn violations(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.starts_with("VIOLATION"))
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.control, "exit");
        if self.proc.wait_timeout(Duration::from_secs(3)).is_none() {
            self.proc.stop(Duration::from_secs(2));
        }
    }
}
