//! The API over real HTTP against a running server: `leased_io::serve_with` with the API as its
//! sidecar (what `leased serve` runs), a config file in a temp dir, DHCP in test mode on
//! loopback (replies go to the request's source), clients driven with leased_wire packets.
//!
//! Traffic stays on 127.0.0.1; addresses handed out are in 198.18.0.0/15; every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use leased_io::{ConfigSource, ServeHooks, ServeParams, serve_with};
use leased_wire::{MessageType, Options, Packet, code};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

const KEY: &str = "key-one-0123456789";
const KEY2: &str = "key-two-0123456789";

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server with its API.
struct Server {
    _dir: tempfile::TempDir,
    config: PathBuf,
    api_port: u16,
    dhcp: SocketAddr,
    client: reqwest::Client,
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

fn config_text(
    dir: &std::path::Path,
    api_port: u16,
    api_extra: &str,
    reservations: &str,
) -> String {
    format!(
        r#"# API test config; this comment must survive API edits
[server]
interfaces = ["lo"]
lease_time = "1h"

[store]
path = "{store}"

[options]
dns = ["198.18.0.53", "198.18.0.54"]
ntp = ["198.18.0.123"]
domain_name = "lab.example"

[[subnets]]
network = "198.18.0.0/24"
interface = "lo"
server_id = "198.18.0.1"
routers = ["198.18.0.1"]
pools = ["198.18.0.100-198.18.0.109"]
exclusions = ["198.18.0.109"]

[[subnets]]
network = "198.18.1.0/24"
shared_network = "relayed"
routers = ["198.18.1.1"]
pools = ["198.18.1.10-198.18.1.19", "198.18.1.30-198.18.1.39"]

{reservations}
[api]
listen = "127.0.0.1:{api_port}"
keys = ["{KEY}", "{KEY2}"]
{api_extra}
"#,
        store = dir.join("leases.db").display(),
    )
}

const RESERVATION: &str = r#"# the printer
[[reservations]]
mac = "02:00:00:00:00:aa"
ip = "198.18.0.10"
hostname = "printer"
note = "2nd floor"
"#;

impl Server {
    async fn start(api_extra: &str, reservations: &str) -> Self {
        Self::start_with(api_extra, reservations, reqwest::Client::new(), "http").await
    }

    async fn start_with(
        api_extra: &str,
        reservations: &str,
        client: reqwest::Client,
        scheme: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let api_port = free_tcp_port();
        let text = config_text(dir.path(), api_port, api_extra, reservations);
        let config = dir.path().join("leased.toml");
        std::fs::write(&config, text).unwrap();
        let settings = leased_config::load(&config).unwrap().api.unwrap();
        let port = free_udp_port();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let hooks = ServeHooks {
            sidecar: Some(Box::new(move |shared, shutdown| {
                leased_api::start(&settings, shared, shutdown)
            })),
            stop: Some(Box::pin(async move {
                let _ = stop_rx.await;
            })),
        };
        let params = ServeParams {
            source: ConfigSource::File(config.clone()),
            server_port: port,
            client_port: port + 1,
        };
        let task = tokio::spawn(serve_with(params, hooks));
        let base = format!("{scheme}://127.0.0.1:{api_port}");
        let s = Self {
            _dir: dir,
            config,
            api_port,
            dhcp: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            client,
            base,
            stop: Some(stop_tx),
            task: Some(task),
        };
        for _ in 0..100 {
            if s.get_with("/health", Some(KEY)).await.is_ok() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("API did not come up on {}", s.base);
    }

    async fn get_with(&self, path: &str, key: Option<&str>) -> reqwest::Result<reqwest::Response> {
        let mut r = self.client.get(format!("{}{path}", self.base));
        if let Some(k) = key {
            r = r.header("X-Api-Key", k);
        }
        r.timeout(Duration::from_secs(5)).send().await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.get_with(path, Some(KEY)).await.unwrap();
        let status = r.status();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "{path}: content-type {ct}"
        );
        (status, r.json().await.unwrap())
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("X-Api-Key", KEY2)
            .timeout(Duration::from_secs(10));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, v)
    }

    /// Polls `/leases` until `pred` holds on the page (the engine publishes every ~100 ms).
    async fn wait_leases(&self, query: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..60 {
            let (st, v) = self.get(&format!("/leases{query}")).await;
            assert_eq!(st, StatusCode::OK, "{v}");
            if pred(&v) {
                return v;
            }
            last = v;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("leases never matched: {last}");
    }

    async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("server did not stop")
                .unwrap()
                .unwrap();
        }
    }
}

fn packet(
    t: MessageType,
    mac: [u8; 6],
    xid: u32,
    ciaddr: Ipv4Addr,
    extra: &[(u8, Vec<u8>)],
) -> Vec<u8> {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac);
    let mut options = Options::new();
    options.set(code::MESSAGE_TYPE, vec![t.code()]);
    for (c, v) in extra {
        options.set(*c, v.clone());
    }
    let p = Packet {
        op: leased_wire::BOOTREQUEST,
        htype: 1,
        hlen: 6,
        hops: 0,
        xid,
        secs: 0,
        flags: 0x8000,
        ciaddr,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr,
        sname: vec![],
        file: vec![],
        options,
        option82_in_overload: false,
    };
    let mut out = Vec::new();
    p.encode(576, &mut out);
    out
}

/// Sends `msg` until a reply with `xid` arrives; at most `tries` sends, 300 ms apart.
async fn exchange(sock: &UdpSocket, server: SocketAddr, msg: &[u8], xid: u32) -> Packet {
    let mut buf = vec![0u8; 2048];
    for _ in 0..20 {
        sock.send_to(msg, server).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await
        {
            let p = Packet::decode(&buf[..n]).unwrap();
            if p.xid == xid {
                return p;
            }
        }
    }
    panic!("no reply to xid {xid:#x}");
}

/// DISCOVER/OFFER/REQUEST/ACK with `hostname`; returns the bound address.
async fn dora(server: SocketAddr, mac: [u8; 6], xid: u32, hostname: &str) -> Ipv4Addr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let host = (code::HOSTNAME, hostname.as_bytes().to_vec());
    let offer = exchange(
        &sock,
        server,
        &packet(
            MessageType::Discover,
            mac,
            xid,
            Ipv4Addr::UNSPECIFIED,
            std::slice::from_ref(&host),
        ),
        xid,
    )
    .await;
    assert_eq!(offer.message_type(), Some(MessageType::Offer));
    let req = packet(
        MessageType::Request,
        mac,
        xid,
        Ipv4Addr::UNSPECIFIED,
        &[
            (code::REQUESTED_IP, offer.yiaddr.octets().to_vec()),
            (code::SERVER_ID, vec![198, 18, 0, 1]),
            host,
        ],
    );
    let ack = exchange(&sock, server, &req, xid).await;
    assert_eq!(ack.message_type(), Some(MessageType::Ack), "for {mac:?}");
    ack.yiaddr
}

async fn send_only(server: SocketAddr, msg: &[u8]) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(msg, server).await.unwrap();
}

fn mac(n: u8) -> [u8; 6] {
    [2, 0, 0, 0, 1, n]
}

fn obj<'a>(v: &'a Value, what: &str) -> &'a serde_json::Map<String, Value> {
    v.as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {v}"))
}

fn keys(v: &Value) -> Vec<String> {
    obj(v, "value").keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcpstats_routes_and_leases_from_live_state() {
    let s = Server::start("", RESERVATION).await;
    let a = dora(s.dhcp, mac(1), 0x101, "alpha").await;
    let b = dora(s.dhcp, mac(2), 0x102, "beta").await;
    let c = dora(s.dhcp, mac(3), 0x103, "gamma").await;
    // The reserved client gets its reservation.
    let p = dora(s.dhcp, [2, 0, 0, 0, 0, 0xaa], 0x1aa, "printer").await;
    assert_eq!(p, Ipv4Addr::new(198, 18, 0, 10));
    s.wait_leases("", |v| v["total"] == 4).await;

    // `/`: DHCPStats' banner.
    let (st, v) = s.get("/").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["message"], "dhcpstats API");
    assert_eq!(v["server"], "leased");

    // `/subnets`: every subnet keyed by CIDR, in config order, field by field.
    let (st, all) = s.get("/subnets").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(keys(&all), vec!["198.18.0.0/24", "198.18.1.0/24"]);
    let s0 = &all["198.18.0.0/24"];
    let mut fields = keys(s0);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "description",
            "dns_servers",
            "domain_name",
            "ips",
            "leases",
            "monitor",
            "ntp_servers",
            "ranges",
            "routers",
            "statics",
            "subnet"
        ]
    );
    assert_eq!(s0["subnet"], "198.18.0.0/24");
    assert!(s0.get("ddns_domain_name").is_none(), "leased does no DDNS");
    assert_eq!(s0["ranges"], json!([["198.18.0.100", "198.18.0.109"]]));
    assert_eq!(s0["monitor"], true);
    assert_eq!(s0["description"], "198.18.0.0/24");
    assert_eq!(s0["routers"], json!(["198.18.0.1"]));
    assert_eq!(s0["dns_servers"], json!(["198.18.0.53", "198.18.0.54"]));
    assert_eq!(s0["ntp_servers"], json!(["198.18.0.123"]));
    assert_eq!(s0["domain_name"], "lab.example");
    // 10 pool addresses; 3 dynamic leases in the pool, the printer's outside it.
    assert_eq!(
        s0["ips"],
        json!({"total": 10, "active": 4, "released": 0, "free": 0, "backup": 0, "unused": 7, "static": 1})
    );
    assert_eq!(
        s0["statics"],
        json!({"printer": {"mac_address": "02:00:00:00:00:aa", "ip_address": "198.18.0.10", "host_name": "printer"}})
    );
    let leases = obj(&s0["leases"], "leases");
    let mut want: Vec<String> = [a, b, c, p].iter().map(ToString::to_string).collect();
    want.sort_by_key(|ip| ip.parse::<Ipv4Addr>().unwrap());
    assert_eq!(
        leases.keys().cloned().collect::<Vec<_>>(),
        want,
        "address order"
    );
    let la = &leases[&a.to_string()];
    let mut lf = keys(la);
    lf.sort();
    assert_eq!(
        lf,
        vec![
            "binding-state",
            "client-hostname",
            "cltt",
            "ends",
            "hardware-ethernet",
            "starts"
        ]
    );
    assert_eq!(la["binding-state"], "active");
    assert_eq!(la["hardware-ethernet"], "02:00:00:00:01:01");
    assert_eq!(la["client-hostname"], "alpha");
    let starts = la["starts"].as_str().unwrap();
    assert!(
        starts.len() == 21 && starts.as_bytes()[1] == b' ' && starts.as_bytes()[6] == b'/',
        "ISC time format: {starts}"
    );
    // The second subnet: nothing optional that is not configured, no nulls anywhere.
    let s1 = &all["198.18.1.0/24"];
    assert_eq!(
        s1["ranges"],
        json!([
            ["198.18.1.10", "198.18.1.19"],
            ["198.18.1.30", "198.18.1.39"]
        ])
    );
    assert_eq!(s1["ips"]["total"], 20);
    assert_eq!(s1["shared_network"], "relayed");
    assert!(s0.get("shared_network").is_none(), "omitted when not set");
    assert_eq!(s1["ips"]["unused"], 20);
    assert!(s1.get("statics").is_some_and(|v| v == &json!({})));
    assert!(!all.to_string().contains("null"), "no nulls: {all}");

    // `/subnets/all` is the same document; `/subnets/list` drops leases and statics.
    let (_, again) = s.get("/subnets/all").await;
    assert_eq!(again, all);
    let (_, list) = s.get("/subnets/list").await;
    for (k, v) in obj(&list, "list") {
        assert!(
            v.get("leases").is_none() && v.get("statics").is_none(),
            "{k}: {v}"
        );
        assert_eq!(
            &v["subnet"], k,
            "every entry names its subnet, as in DHCPStats"
        );
        assert_eq!(v["ips"], all[k]["ips"]);
        assert_eq!(v["ranges"], all[k]["ranges"]);
    }

    // `/subnets/{network}`: by address, by CIDR (encoded or plain slash); not wrapped.
    for path in [
        "/subnets/198.18.0.0",
        "/subnets/198.18.0.0%2F24",
        "/subnets/198.18.0.0/24",
    ] {
        let (st, one) = s.get(path).await;
        assert_eq!(st, StatusCode::OK, "{path}");
        assert_eq!(one["subnet"], "198.18.0.0/24");
        assert_eq!(one["ips"], s0["ips"]);
        assert_eq!(one["leases"], s0["leases"]);
    }
    let (st, v) = s.get("/subnets/198.18.9.0").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["message"], "no subnet 198.18.9.0");
    let (st, _) = s.get("/subnets/not-a-net").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // `POST /refresh` (DHCPStats' manual re-read): the live state needs none, so `ok`.
    let (st, v) = s.send(reqwest::Method::POST, "/refresh", None).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"result": "ok"})));

    // `/counts`: the sums.
    let (_, counts) = s.get("/counts").await;
    assert_eq!(
        counts,
        json!({"ip_counts": {"total": 30, "active": 4, "released": 0, "free": 0, "backup": 0, "unused": 27, "static": 1},
               "estimated_devices": 5})
    );

    // `/leases`: shape, filters, pagination.
    let (_, page) = s.get("/leases").await;
    assert_eq!(page["total"], 4);
    assert_eq!(page["offset"], 0);
    assert_eq!(page["limit"], 100);
    let first = &page["leases"][0];
    assert_eq!(first["ip"], "198.18.0.10");
    assert_eq!(first["mac"], "02:00:00:00:00:aa");
    assert_eq!(first["client_id"], "01:02:00:00:00:00:aa");
    assert_eq!(first["hostname"], "printer");
    assert_eq!(first["state"], "bound");
    assert_eq!(first["binding_state"], "active");
    assert_eq!(first["subnet"], "198.18.0.0/24");
    assert_eq!(first["reserved"], true);
    let (starts, expires) = (
        first["starts"].as_u64().unwrap(),
        first["expires"].as_u64().unwrap(),
    );
    assert_eq!(expires - starts, 3600);
    assert!(first["starts_at"].as_str().unwrap().ends_with('Z'));
    assert!(first.get("circuit_id").is_none());
    let (_, v) = s.get("/leases?mac=02-00-00-00-01-02").await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["leases"][0]["ip"], b.to_string());
    let (_, v) = s.get(&format!("/leases?ip={c}")).await;
    assert_eq!(v["leases"][0]["hostname"], "gamma");
    let (_, v) = s.get("/leases?ip=198.18.0.96/28").await;
    assert_eq!(v["total"], 3);
    let (_, v) = s.get("/leases?hostname=ALP").await;
    assert_eq!(v["total"], 1);
    let (_, v) = s.get("/leases?state=bound&limit=2&offset=1").await;
    assert_eq!(
        (v["total"].as_u64(), v["leases"].as_array().unwrap().len()),
        (Some(4), 2)
    );
    assert_eq!(v["leases"][0]["ip"], want[1]);
    let (_, v) = s.get("/leases?state=released").await;
    assert_eq!(v["total"], 0);
    let (_, v) = s.get("/leases?circuit_id=eth0%2F1").await;
    assert_eq!(v["total"], 0);
    for bad in [
        "/leases?state=nope",
        "/leases?mac=zz",
        "/leases?limit=0",
        "/leases?ip=x",
        "/leases?limit=-1",
    ] {
        let (st, v) = s.get(bad).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(v["message"].is_string());
    }

    // `/leases/{ip}`.
    let (st, v) = s.get(&format!("/leases/{a}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["hostname"], "alpha");
    let (st, v) = s.get("/leases/198.18.0.200").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["message"], "no lease for 198.18.0.200");
    let (st, _) = s.get("/leases/nope").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // A RELEASE shows at once (within the publish interval) as released.
    let release = packet(
        MessageType::Release,
        mac(1),
        0x201,
        a,
        &[(code::SERVER_ID, vec![198, 18, 0, 1])],
    );
    send_only(s.dhcp, &release).await;
    s.wait_leases(&format!("?ip={a}"), |v| {
        v["leases"][0]["state"] == "released"
    })
    .await;
    let (_, one) = s.get("/subnets/198.18.0.0").await;
    assert_eq!(one["ips"]["active"], 3);
    assert_eq!(one["ips"]["released"], 1);
    assert_eq!(one["ips"]["unused"], 7, "a released address is not unused");
    assert_eq!(one["leases"][a.to_string()]["binding-state"], "released");

    // `/health` (needs a key here), unknown routes are JSON 404s.
    let (st, h) = s.get("/health").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["subnets"], 2);
    assert_eq!(h["leases"], 4);
    let (st, v) = s.get("/no/such/route").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(v["message"].as_str().unwrap().contains("no such route"));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_keys_and_public_routes() {
    let s = Server::start("", "").await;
    let failed = json!({"message": "X-Api-Key authentication failed."});
    for path in [
        "/",
        "/subnets",
        "/subnets/list",
        "/counts",
        "/leases",
        "/reservations",
        "/health",
        "/metrics",
        "/openapi.json",
        "/nope",
    ] {
        // (Surrounding spaces are not part of a header value in HTTP, so "key-one-0123456789 " is valid.)
        for key in [
            None,
            Some("wrong"),
            Some(""),
            Some("key-one-012345678"),
            Some("key-one-01234567892"),
        ] {
            let r = s.get_with(path, key).await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path} {key:?}");
            assert_eq!(r.json::<Value>().await.unwrap(), failed, "{path}");
        }
        for key in [KEY, KEY2] {
            let r = s.get_with(path, Some(key)).await.unwrap();
            let want = if path == "/nope" {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            };
            assert_eq!(r.status(), want, "{path} with {key}");
        }
    }
    // Writes need a key too.
    let r = s
        .client
        .post(format!("{}/reservations", s.base))
        .json(&json!({"mac": "02:00:00:00:00:01", "ip": "198.18.0.20"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    s.shutdown().await;

    let s = Server::start("public_health = true\npublic_metrics = true", "").await;
    for path in ["/health", "/metrics"] {
        let r = s.get_with(path, None).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path} is public");
    }
    for path in ["/", "/subnets", "/leases"] {
        let r = s.get_with(path, None).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path} stays private");
    }
    s.shutdown().await;
}

/// Parses `/metrics` with a Prometheus text parser.
async fn scrape(s: &Server) -> prometheus_parse::Scrape {
    let r = s.get_with("/metrics", Some(KEY)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:?}");
    match &found[0].value {
        prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        other => panic!("{metric}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_the_leases_held() {
    let s = Server::start("", RESERVATION).await;
    let mut ips = Vec::new();
    for i in 1..=4 {
        ips.push(dora(s.dhcp, mac(i), 0x300 + u32::from(i), "m").await);
    }
    // One RELEASE, one DECLINE.
    let release = packet(
        MessageType::Release,
        mac(1),
        0x401,
        ips[0],
        &[(code::SERVER_ID, vec![198, 18, 0, 1])],
    );
    send_only(s.dhcp, &release).await;
    let decline = packet(
        MessageType::Decline,
        mac(2),
        0x402,
        Ipv4Addr::UNSPECIFIED,
        &[
            (code::REQUESTED_IP, ips[1].octets().to_vec()),
            (code::SERVER_ID, vec![198, 18, 0, 1]),
        ],
    );
    send_only(s.dhcp, &decline).await;
    s.wait_leases("?state=bound", |v| v["total"] == 2).await;
    s.wait_leases("?state=declined", |v| v["total"] == 1).await;

    let m = scrape(&s).await;
    let net0 = [("subnet", "198.18.0.0/24")];
    let pool0 = [
        ("subnet", "198.18.0.0/24"),
        ("pool", "198.18.0.100-198.18.0.109"),
    ];
    // Pool of 10 with one exclusion: 2 bound, 1 declined, 1 released (free again).
    for labels in [&net0[..], &pool0[..]] {
        let kind = if labels.len() == 1 { "subnet" } else { "pool" };
        assert_eq!(
            value(&m, &format!("leased_{kind}_addresses_total"), labels),
            10.0
        );
        assert_eq!(
            value(&m, &format!("leased_{kind}_addresses_assigned"), labels),
            2.0
        );
        assert_eq!(
            value(&m, &format!("leased_{kind}_addresses_declined"), labels),
            1.0
        );
        assert_eq!(
            value(&m, &format!("leased_{kind}_addresses_free"), labels),
            10.0 - 1.0 - 2.0 - 1.0
        );
    }
    assert_eq!(
        value(
            &m,
            "leased_subnet_addresses_total",
            &[("subnet", "198.18.1.0/24")]
        ),
        20.0
    );
    assert_eq!(
        value(
            &m,
            "leased_subnet_addresses_free",
            &[("subnet", "198.18.1.0/24")]
        ),
        20.0
    );
    assert_eq!(
        value(
            &m,
            "leased_pool_addresses_total",
            &[("pool", "198.18.1.30-198.18.1.39")]
        ),
        10.0
    );
    for (state, n) in [
        ("bound", 2.0),
        ("released", 1.0),
        ("declined", 1.0),
        ("offered", 0.0),
        ("expired", 0.0),
    ] {
        assert_eq!(
            value(
                &m,
                "leased_leases",
                &[("subnet", "198.18.0.0/24"), ("state", state)]
            ),
            n,
            "{state}"
        );
    }
    assert_eq!(value(&m, "leased_reservations", &net0), 1.0);
    // Packet counters by type: every exchange was tried until answered, so at least one each.
    assert!(value(&m, "leased_packets_received_total", &[("type", "DISCOVER")]) >= 4.0);
    assert_eq!(
        value(&m, "leased_packets_received_total", &[("type", "RELEASE")]),
        1.0
    );
    assert_eq!(
        value(&m, "leased_packets_received_total", &[("type", "DECLINE")]),
        1.0
    );
    let offers = value(&m, "leased_packets_sent_total", &[("type", "OFFER")]);
    let acks = value(&m, "leased_packets_sent_total", &[("type", "ACK")]);
    assert!(offers >= 4.0 && acks >= 4.0);
    assert_eq!(
        value(&m, "leased_packets_sent_total", &[("type", "NAK")]),
        0.0
    );
    assert_eq!(value(&m, "leased_store_errors_total", &[]), 0.0);
    // The latency histogram counts every reply sent.
    let hist = m
        .samples
        .iter()
        .find(|x| x.metric == "leased_reply_latency_seconds")
        .expect("histogram");
    let prometheus_parse::Value::Histogram(buckets) = &hist.value else {
        panic!("not a histogram: {hist:?}")
    };
    let inf = buckets.iter().find(|b| b.less_than.is_infinite()).unwrap();
    assert_eq!(inf.count, offers + acks);
    assert!(
        buckets.windows(2).all(|w| w[0].count <= w[1].count),
        "cumulative"
    );
    assert_eq!(
        value(&m, "leased_reply_latency_seconds_count", &[]),
        offers + acks
    );

    // Drops by reason and malformed datagrams: a DISCOVER with an all-zero chaddr, and junk.
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let zero = packet(
        MessageType::Discover,
        [0; 6],
        0x599,
        Ipv4Addr::UNSPECIFIED,
        &[],
    );
    sock.send_to(&zero, s.dhcp).await.unwrap();
    sock.send_to(b"junk", s.dhcp).await.unwrap();
    let reason = |m: &prometheus_parse::Scrape, metric: &str, r: &str| -> f64 {
        m.samples
            .iter()
            .filter(|x| x.metric == metric && x.labels.get("reason") == Some(r))
            .map(|x| match x.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    let mut seen = (0.0, 0.0);
    for _ in 0..40 {
        let m = scrape(&s).await;
        seen = (
            reason(&m, "leased_packets_dropped_total", "zero_chaddr"),
            reason(&m, "leased_packets_malformed_total", "truncated"),
        );
        if seen == (1.0, 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        (1.0, 1.0),
        "drops by reason (zero_chaddr) and malformed (truncated)"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservation_crud_round_trip_seen_by_a_client() {
    let s = Server::start("", RESERVATION).await;
    let (st, list) = s.get("/reservations").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        list,
        json!([{"ip": "198.18.0.10", "subnet": "198.18.0.0/24", "mac": "02:00:00:00:00:aa",
                "hostname": "printer", "note": "2nd floor"}])
    );

    // A client gets a pool address first...
    let cam = [2, 0, 0, 0, 0, 0xbb];
    let before = dora(s.dhcp, cam, 0x601, "cam").await;
    assert!(before.octets()[3] >= 100);

    // POST: validated, written, live on return.
    let (st, v) = s
        .send(
            reqwest::Method::POST,
            "/reservations",
            Some(json!({"mac": "02:00:00:00:00:bb", "ip": "198.18.0.20", "hostname": "cam", "note": "lobby"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        v,
        json!({"ip": "198.18.0.20", "subnet": "198.18.0.0/24", "mac": "02:00:00:00:00:bb",
               "hostname": "cam", "note": "lobby"})
    );
    let text = std::fs::read_to_string(&s.config).unwrap();
    assert!(text.starts_with("# API test config; this comment must survive API edits\n"));
    assert!(text.contains("# the printer\n[[reservations]]"), "{text}");
    assert!(text.contains("ip = \"198.18.0.20\""));
    // ...and the running server gives the reserved address at once (a new exchange).
    let after = dora(s.dhcp, cam, 0x602, "cam").await;
    assert_eq!(after, Ipv4Addr::new(198, 18, 0, 20));
    let (st, v) = s.get("/reservations/198.18.0.20").await;
    assert_eq!((st, &v["note"]), (StatusCode::OK, &json!("lobby")));

    // Conflicts and invalid input leave the file untouched.
    let (st, v) = s
        .send(
            reqwest::Method::POST,
            "/reservations",
            Some(json!({"mac": "02:00:00:00:00:cc", "ip": "198.18.0.20"})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let (st, v) = s
        .send(
            reqwest::Method::POST,
            "/reservations",
            Some(json!({"mac": "zz", "ip": "198.18.0.21"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let err = v["errors"][0].as_str().unwrap();
    assert!(
        err.starts_with(&format!("{}:", s.config.display())) && err.contains("mac"),
        "{err}"
    );
    let (st, _) = s
        .send(
            reqwest::Method::POST,
            "/reservations",
            Some(json!({"mac": "02:00:00:00:00:cc", "ip": "203.0.113.1"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "outside every subnet");
    let (st, _) = s
        .send(
            reqwest::Method::POST,
            "/reservations",
            Some(json!({"mac": "02:00:00:00:00:cc", "bogus_key": 1, "ip": "198.18.0.21"})),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown keys are refused"
    );
    let (st, _) = s
        .send(
            reqwest::Method::POST,
            "/reservations",
            Some(json!({"mac": "02:00:00:00:00:cc"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "no ip");
    let (st, _) = s
        .send(reqwest::Method::POST, "/reservations", Some(json!([1, 2])))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "not an object");
    assert_eq!(std::fs::read_to_string(&s.config).unwrap(), text);

    // PUT replaces (the path's ip is the identity).
    let (st, v) = s
        .send(
            reqwest::Method::PUT,
            "/reservations/198.18.0.20",
            Some(json!({"mac": "02:00:00:00:00:bb", "hostname": "cam2"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["hostname"], "cam2");
    assert!(v.get("note").is_none());
    let (st, _) = s
        .send(
            reqwest::Method::PUT,
            "/reservations/198.18.0.20",
            Some(json!({"mac": "02:00:00:00:00:bb", "ip": "198.18.0.21"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s
        .send(
            reqwest::Method::PUT,
            "/reservations/198.18.0.99",
            Some(json!({"mac": "02:00:00:00:00:bb"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // DELETE: gone from the file and from the running server; the client moves back to the pool.
    let (st, _) = s
        .send(reqwest::Method::DELETE, "/reservations/198.18.0.20", None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s.get("/reservations/198.18.0.20").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, _) = s
        .send(reqwest::Method::DELETE, "/reservations/198.18.0.20", None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let text = std::fs::read_to_string(&s.config).unwrap();
    assert!(
        !text.contains("198.18.0.20") && text.contains("# the printer"),
        "{text}"
    );
    let moved = dora(s.dhcp, cam, 0x603, "cam").await;
    assert_ne!(moved, Ipv4Addr::new(198, 18, 0, 20));
    let (_, list) = s.get("/reservations").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route_and_every_route_answers() {
    let s = Server::start("", RESERVATION).await;
    let (st, doc) = s.get("/openapi.json").await;
    assert_eq!(st, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = obj(&doc["paths"], "paths");
    let mut got: Vec<&str> = paths.keys().map(String::as_str).collect();
    got.sort_unstable();
    assert_eq!(
        got,
        vec![
            "/",
            "/arp_findings",
            "/counts",
            "/ha",
            "/ha/maintenance",
            "/ha/resume",
            "/ha/sync",
            "/health",
            "/leases",
            "/leases/{ip}",
            "/metrics",
            "/openapi.json",
            "/refresh",
            "/reservations",
            "/reservations/{ip}",
            "/rogue_servers",
            "/subnets",
            "/subnets/all",
            "/subnets/list",
            "/subnets/{network}",
            "/subnets/{network}/{prefix}"
        ]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"],
        json!({"type": "apiKey", "in": "header", "name": "X-Api-Key"})
    );
    let methods = |p: &str| -> Vec<String> {
        let mut m: Vec<String> = obj(&paths[p], p).keys().cloned().collect();
        m.sort();
        m
    };
    assert_eq!(methods("/reservations"), vec!["get", "post"]);
    assert_eq!(methods("/refresh"), vec!["post"]);
    for p in ["/ha/maintenance", "/ha/resume", "/ha/sync"] {
        assert_eq!(methods(p), vec!["post"]);
    }
    assert_eq!(methods("/reservations/{ip}"), vec!["delete", "get", "put"]);
    // Every documented GET answers (not a "no such route" 404).
    for p in got {
        if paths[p].get("get").is_none() {
            continue;
        }
        let concrete = p
            .replace("{ip}", "198.18.0.10")
            .replace("{network}", "198.18.0.0")
            .replace("{prefix}", "24");
        let r = s.get_with(&concrete, Some(KEY)).await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        // `/leases/{ip}` may be a 404 for a lease that does not exist, never for the route.
        assert!(
            status.is_success()
                || (status == StatusCode::NOT_FOUND && !body.contains("no such route")),
            "{concrete}: {status} {body}"
        );
    }
    s.shutdown().await;
}

/// A self-signed certificate for 127.0.0.1 and localhost, as PEM (cert, key).
fn self_signed() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "leased test");
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_redirect() {
    let (cert, key) = self_signed();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let redirect_port = free_tcp_port();
    let extra = format!(
        "http_redirect = \"127.0.0.1:{redirect_port}\"\n[api.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    );
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let s = Server::start_with(&extra, RESERVATION, client.clone(), "https").await;

    // HTTPS with the key works, and checks the key as over HTTP.
    let (st, v) = s.get("/subnets/list").await;
    assert_eq!(st, StatusCode::OK);
    assert!(v.get("198.18.0.0/24").is_some());
    let r = s.get_with("/subnets", None).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A client that does not trust the certificate is refused by its own TLS check.
    let untrusting = reqwest::Client::new();
    assert!(
        untrusting
            .get(format!("{}/health", s.base))
            .send()
            .await
            .is_err()
    );
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/health", s.api_port))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));

    // The redirect listener sends every request to the same path on https.
    let r = client
        .get(format!("http://127.0.0.1:{redirect_port}/leases?limit=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("https://127.0.0.1:{}/leases?limit=5", s.api_port)
    );
    // Following it (with the key) lands on the API.
    let followed = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{redirect_port}/counts"))
        .header("X-Api-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status(), StatusCode::OK);
    assert!(followed.json::<Value>().await.unwrap()["ip_counts"].is_object());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_fails_without_keys_or_with_a_bad_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), free_tcp_port(), "", "")
        .replace(&format!("keys = [\"{KEY}\", \"{KEY2}\"]"), "keys = []");
    let path = dir.path().join("leased.toml");
    std::fs::write(&path, &text).unwrap();
    let settings = leased_config::load(&path).unwrap().api.unwrap();
    let port = free_udp_port();
    let hooks = ServeHooks {
        sidecar: Some(Box::new(move |shared, shutdown| {
            leased_api::start(&settings, shared, shutdown)
        })),
        stop: None,
    };
    let params = ServeParams {
        source: ConfigSource::File(path.clone()),
        server_port: port,
        client_port: port + 1,
    };
    // LEASED_API_KEYS is not set in this test process.
    let err = tokio::time::timeout(Duration::from_secs(10), serve_with(params, hooks))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("LEASED_API_KEYS"), "{err}");

    let mut settings = leased_config::load(&path).unwrap().api.unwrap();
    settings.keys = vec!["k".into()];
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    settings.tls = Some(leased_config::TlsSettings {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("missing.pem"),
    });
    let err = leased_api::tls_config(settings.tls.as_ref().unwrap()).unwrap_err();
    assert!(
        format!("{err:#}").contains("cert.pem") || format!("{err:#}").contains("missing.pem"),
        "{err:#}"
    );
}

/// The monitors' listings: behind the key, in the document, empty (not missing) when the
/// monitors are off, and their gauges present with zeros. What they list when something is
/// found is checked end to end in leased/tests/rogue.rs and leased/tests/arp.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_routes_are_keyed_and_empty_when_the_monitors_are_off() {
    let s = Server::start("", RESERVATION).await;
    for path in ["/rogue_servers", "/arp_findings"] {
        let r = s.get_with(path, None).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path} without a key");
        let r = s.get_with(path, Some("wrong")).await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{path} with a wrong key"
        );
        let (st, body) = s.get(path).await;
        assert_eq!(st, StatusCode::OK, "{path}");
        assert_eq!(body, json!([]), "{path}");
    }
    let (_, doc) = s.get("/openapi.json").await;
    for (path, schema) in [
        ("/rogue_servers", "RogueServerView"),
        ("/arp_findings", "ArpFindingView"),
    ] {
        assert_eq!(
            doc["paths"][path]["get"]["security"],
            json!([{"api_key": []}]),
            "{path}"
        );
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    let props = obj(
        &doc["components"]["schemas"]["RogueServerView"]["properties"],
        "props",
    );
    for k in ["server_ip", "mac", "iface", "first_seen", "last_seen"] {
        assert!(props.contains_key(k), "RogueServerView.{k}");
    }
    let m = scrape(&s).await;
    assert_eq!(value(&m, "leased_foreign_dhcp_servers", &[]), 0.0);
    for kind in ["unknown", "mac-mismatch", "banned-mac"] {
        assert_eq!(value(&m, "leased_arp_findings", &[("kind", kind)]), 0.0);
    }
    s.shutdown().await;
}
