//! `[ha]` without its partner link: `leased check` warns and `leased serve` refuses to start,
//! so two servers configured as a pair never serve one pool unreplicated (which would hand one
//! address to two clients). Neither touches the network.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `leased ARGS`, killed after 30 s (a serve that did not refuse would run on).
fn leased(args: &[&str]) -> (Option<Output>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_leased"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    #[allow(clippy::disallowed_methods)]
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            return (Some(out), err);
        }
        #[allow(clippy::disallowed_methods)]
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (None, "still running after 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const CONFIG: &str = r#"
[store]
path = "STORE"

[[subnets]]
network = "198.18.0.0/24"
interface = "lo"
pools = ["198.18.0.10-198.18.0.20"]

[ha]
mode = "hot-standby"
this_server = "a"
shared_key = "a partner key of 32 characters!"

[[ha.peers]]
name = "a"
url = "198.18.0.1:8647"
role = "primary"

[[ha.peers]]
name = "b"
url = "198.18.0.2:8647"
role = "standby"
"#;

#[test]
fn serve_refuses_a_pair_it_cannot_replicate_and_check_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("leased.toml");
    let store = dir.path().join("leased.leases");
    std::fs::write(&cfg, CONFIG.replace("STORE", &store.display().to_string())).unwrap();
    let cfg = cfg.display().to_string();

    let (check, err) = leased(&["check", "-c", &cfg]);
    assert!(check.is_some_and(|o| o.status.success()), "check: {err}");
    assert!(
        err.contains("no HA partner link") && err.contains("refuses"),
        "{err}"
    );

    let (serve, err) = leased(&["serve", "-c", &cfg]);
    let serve = serve.unwrap_or_else(|| panic!("serve started with [ha]: {err}"));
    assert!(!serve.status.success(), "serve started with [ha]: {err}");
    assert!(err.contains("no HA partner link"), "{err}");
    assert!(!store.exists(), "the store was opened before the refusal");
}
