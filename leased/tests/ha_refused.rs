//! `[ha]` without its partner link: `leased check` warns and `leased serve` refuses to start,
//! so two servers configured as a pair never serve one pool unreplicated (which would hand one
//! address to two clients). Neither touches the network.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::proc::run;
use support::server::leased_bin;

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
    let arg = |s: &str| s.to_string();
    let cfg_s = cfg.display().to_string();

    let check = run(
        None,
        &[leased_bin(), arg("check"), arg("-c"), cfg_s.clone()],
        Duration::from_secs(30),
    );
    assert!(check.ok(), "{}", check.all());
    assert!(
        check.stderr.contains("no HA partner link") && check.stderr.contains("refuses"),
        "{}",
        check.all()
    );

    let serve = run(
        None,
        &[leased_bin(), arg("serve"), arg("-c"), cfg_s],
        Duration::from_secs(30),
    );
    assert!(
        serve.status.is_some() && !serve.ok(),
        "serve started with [ha]: {}",
        serve.all()
    );
    assert!(
        serve.stderr.contains("no HA partner link"),
        "{}",
        serve.all()
    );
    assert!(!store.exists(), "the store was opened before the refusal");
}
