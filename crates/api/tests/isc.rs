//! The DHCPStats API over ISC dhcpd's files (`leased_api::isc`), over real HTTP on loopback,
//! with the reading clock injected: what DHCPStats reports of a lease (failover times, `set`
//! variables, DDNS names, `uid` as written), statics' host names as dhcpd sends them,
//! `ddns_domain_name`, `subnet` in every entry, entries without a binding state judged at the
//! injected time, `POST /refresh` and `GET /leases`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use leased_api::conn::ConnLimits;
use leased_api::isc::{IscSource, serve};
use reqwest::StatusCode;
use serde_json::{Value, json};

const KEY: &str = "isc-api-key-0123456789";

/// 2030-01-01 00:00:00 UTC: the injected "now" of every reading in these tests.
const NOW: i64 = 1_893_456_000;

fn fixed_now() -> i64 {
    NOW
}

const CONF: &str = r#"
option domain-name "isc.example";
ddns-domainname "ddns.isc.example";
subnet 198.18.0.0 netmask 255.255.255.0 {
  range 198.18.0.100 198.18.0.109;          # a bare range, outside any pool: dhcpd serves it
  option routers 198.18.0.1;
  host printer { hardware ethernet 02:00:00:00:11:01; fixed-address 198.18.0.20; option host-name "printer"; }
  host nameless { hardware ethernet 02:00:00:00:11:02; fixed-address 198.18.0.21; }
}
subnet 198.18.1.0 netmask 255.255.255.0 {
  ddns-domainname "campus.example";
  pool { range 198.18.1.10 198.18.1.19; }
  group {
    use-host-decl-names on;
    host cam { hardware ethernet 02:00:00:00:11:03; fixed-address 198.18.1.5; }
  }
}
"#;

const LEASES: &str = r#"lease 198.18.0.100 {
  starts 1 2029/12/31 12:00:00;
  ends 2 2030/01/01 12:00:00;
  tstp 2 2030/01/01 18:00:00;
  tsfp 2 2030/01/01 18:00:01;
  atsfp 2 2030/01/01 18:00:02;
  cltt 1 2029/12/31 12:00:00;
  binding state active;
  next binding state free;
  hardware ethernet 52:54:00:16:7d:92;
  uid 01:52:54:00:16:7d:92;
  set ddns-rev-name = "100.0.18.198.in-addr.arpa.";
  set ddns-fwd-name = "clientA.ddns.isc.example";
  set vendor-class-identifier = "MSFT 5.0";
  set vendor-string = "android-dhcp-13";
  set starts = "not a time";
  client-hostname "clientA";
}
lease 198.18.0.101 {
  starts 1 2029/12/31 12:00:00;
  ends 2 2030/01/01 12:00:00;
  binding state free;
  hardware token-ring 52:54:00:1a:ce:31;
  uid "\377\000\032\3161\000\001\"x";
}
lease 198.18.0.102 {
  starts 1 2029/12/31 12:00:00;
  ends 2 2030/01/01 12:00:00;
  hardware ethernet 52:54:00:00:01:02;
}
lease 198.18.0.103 {
  starts 1 2029/12/31 10:00:00;
  ends 1 2029/12/31 12:00:00;
  hardware ethernet 52:54:00:00:01:03;
}
"#;

struct Isc {
    _dir: tempfile::TempDir,
    conf: std::path::PathBuf,
    leases: std::path::PathBuf,
    base: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Isc {
    async fn start() -> Isc {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("dhcpd.conf");
        let leases = dir.path().join("dhcpd.leases");
        std::fs::write(&conf, CONF).unwrap();
        std::fs::write(&leases, LEASES).unwrap();
        let source = Arc::new(IscSource::load_with_clock(&conf, &leases, fixed_now).unwrap());
        let limits = ConnLimits {
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            max_connections: 16,
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr, server) = serve(
            "127.0.0.1:0".parse().unwrap(),
            &[KEY.to_string()],
            &limits,
            source,
            async {
                let _ = rx.await;
            },
        )
        .unwrap();
        tokio::spawn(server);
        Isc {
            _dir: dir,
            conf,
            leases,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            stop: Some(tx),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("X-Api-Key", KEY)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap()
    }

    async fn json(&self, path: &str) -> Value {
        let r = self.call(reqwest::Method::GET, path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        r.json().await.unwrap()
    }
}

impl Drop for Isc {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn dhcpstats_fields_field_by_field() {
    let s = Isc::start().await;
    let all = s.json("/subnets/all").await;
    let s0 = &all["198.18.0.0/24"];
    assert_eq!(s0["subnet"], "198.18.0.0/24");
    assert_eq!(s0["ranges"], json!([["198.18.0.100", "198.18.0.109"]]));
    assert_eq!(
        s0["ips"]["total"], 10,
        "the bare range counts: dhcpd serves it"
    );
    assert_eq!(s0["domain_name"], "isc.example");
    assert_eq!(s0["ddns_domain_name"], "ddns.isc.example", "inherited");
    assert_eq!(all["198.18.1.0/24"]["ddns_domain_name"], "campus.example");
    assert_eq!(all["198.18.1.0/24"]["subnet"], "198.18.1.0/24");

    // The lease as DHCPStats reports it: every field, nothing else.
    assert_eq!(
        s0["leases"]["198.18.0.100"],
        json!({
            "starts": "1 2029/12/31 12:00:00",
            "ends": "2 2030/01/01 12:00:00",
            "tstp": "2 2030/01/01 18:00:00",
            "tsfp": "2 2030/01/01 18:00:01",
            "atsfp": "2 2030/01/01 18:00:02",
            "cltt": "1 2029/12/31 12:00:00",
            "binding-state": "active",
            "hardware-ethernet": "52:54:00:16:7d:92",
            "uid": "01:52:54:00:16:7d:92",
            "ddns-fwd-name": "clientA.ddns.isc.example",
            "ddns-rev-name": "100.0.18.198.in-addr.arpa.",
            "vendor-class-identifier": "MSFT 5.0",
            "vendor-string": "android-dhcp-13",
            "client-hostname": "clientA"
        }),
        "a `set starts` does not shadow the real one"
    );
    // Another hardware type under its own key; a quoted uid as written (escapes kept).
    assert_eq!(
        s0["leases"]["198.18.0.101"],
        json!({
            "starts": "1 2029/12/31 12:00:00",
            "ends": "2 2030/01/01 12:00:00",
            "binding-state": "free",
            "hardware-token-ring": "52:54:00:1a:ce:31",
            "uid": r#"\377\000\032\3161\000\001\"x"#
        })
    );
    // No binding state: active while its end (noon) is after the reading (midnight) ...
    assert_eq!(s0["leases"]["198.18.0.102"]["binding-state"], "active");
    // ... free once it has passed.
    assert_eq!(s0["leases"]["198.18.0.103"]["binding-state"], "free");
    assert_eq!(
        s0["ips"],
        json!({"total": 10, "active": 2, "released": 0, "free": 2, "backup": 0, "unused": 6, "static": 2})
    );

    // Statics: host_name only where dhcpd sends one.
    assert_eq!(
        s0["statics"],
        json!({
            "printer": {"mac_address": "02:00:00:00:11:01", "ip_address": "198.18.0.20", "host_name": "printer"},
            "nameless": {"mac_address": "02:00:00:00:11:02", "ip_address": "198.18.0.21"}
        })
    );
    assert_eq!(
        all["198.18.1.0/24"]["statics"]["cam"]["host_name"], "cam",
        "use-host-decl-names on"
    );

    // `/subnets/list`: every entry with `subnet`, without leases and statics.
    let list = s.json("/subnets/list").await;
    for (k, v) in list.as_object().unwrap() {
        assert_eq!(&v["subnet"], k);
        assert!(
            v.get("leases").is_none() && v.get("statics").is_none(),
            "{v}"
        );
        let mut full = all[k].clone();
        let o = full.as_object_mut().unwrap();
        o.remove("leases");
        o.remove("statics");
        assert_eq!(v, &full, "the rest is /subnets/all's");
    }
    assert_eq!(s.json("/subnets/198.18.0.0").await, *s0);
}

#[tokio::test]
async fn refresh_and_the_raw_leases_file() {
    let s = Isc::start().await;
    // GET /leases: the file itself, gzipped, as an attachment.
    let r = s.call(reqwest::Method::GET, "/leases").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/gzip");
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=dhcpd.leases.gz"
    );
    assert_eq!(gunzip(&r.bytes().await.unwrap()), LEASES.as_bytes());

    // dhcpd appends: /leases serves the new file at once; the counts wait for a re-read,
    // which POST /refresh does now.
    let more =
        format!("{LEASES}lease 198.18.1.10 {{\n  binding state active;\n  ends never;\n}}\n");
    std::fs::write(&s.leases, &more).unwrap();
    let r = s.call(reqwest::Method::GET, "/leases").await;
    assert_eq!(gunzip(&r.bytes().await.unwrap()), more.as_bytes());
    let before = s.json("/counts").await;
    assert_eq!(before["ip_counts"]["active"], 2);
    let r = s.call(reqwest::Method::POST, "/refresh").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"result": "ok"}));
    assert_eq!(s.json("/counts").await["ip_counts"]["active"], 3);

    // A broken conf: 500 with the reason, and the previous reading stays in use.
    std::fs::write(&s.conf, "subnet 198.18.0.0 netmask {").unwrap();
    let r = s.call(reqwest::Method::POST, "/refresh").await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let v: Value = r.json().await.unwrap();
    let why = v["result"].as_str().unwrap();
    assert!(why.contains("dhcpd.conf:1:"), "{v}");
    assert_eq!(v["message"], v["result"]);
    assert_eq!(s.json("/counts").await["ip_counts"]["active"], 3);

    // GET /refresh is not a refresh (DHCPStats: POST only).
    let r = s.call(reqwest::Method::GET, "/refresh").await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Without the key: 401, like every route.
    let r = s
        .client
        .post(format!("{}/refresh", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s
        .client
        .get(format!("{}/leases", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // No leases file (dhcpd has not written one): a JSON 500 saying why.
    std::fs::remove_file(&s.leases).unwrap();
    let r = s.call(reqwest::Method::GET, "/leases").await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("Failed to compress leases database: "),
        "{v}"
    );

    // The OpenAPI document lists exactly the DHCPStats routes.
    let doc = s.json("/openapi.json").await;
    let mut paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/",
            "/counts",
            "/leases",
            "/refresh",
            "/subnets",
            "/subnets/all",
            "/subnets/list",
            "/subnets/{network}",
            "/subnets/{network}/{prefix}"
        ]
    );
}

/// Refreshes at once are serialised (one reading at a time), and every one answers.
#[tokio::test]
async fn concurrent_refreshes_all_answer() {
    let s = Isc::start().await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let c = s.client.clone();
        let url = format!("{}/refresh", s.base);
        tasks.push(tokio::spawn(async move {
            c.post(url)
                .header("X-Api-Key", KEY)
                .timeout(Duration::from_secs(20))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(s.json("/counts").await["ip_counts"]["active"], 2);
}
