//! The dashboard's door over real HTTP, against a running server (`leased_io::serve_with` with
//! the API as its sidecar, DHCP in test mode on loopback): login with a key into a session
//! cookie, what a request without one gets, CSRF and Origin on every write, the security
//! headers, reservations through the API's own handlers, the grid, lease search and history,
//! the live event stream, logout (the old cookie and CSRF token stop working), the login
//! back-off, and `[api] ui = false`. The browser tests are in `leased/tests/ui.rs`.
//!
//! Traffic stays on 127.0.0.1; addresses handed out are in 198.18.0.0/15; every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use leased_io::{ConfigSource, ServeHooks, ServeParams, serve_with};
use leased_wire::{MessageType, Options, Packet, code};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

const KEY: &str = "dash-key-0123456789";

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

struct Server {
    dir: tempfile::TempDir,
    config: PathBuf,
    dhcp: SocketAddr,
    base: String,
    origin: String,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    async fn start(api_extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let api_port = free_tcp_port();
        let text = format!(
            r#"# dashboard test config
[server]
interfaces = ["lo"]
lease_time = "1h"

[store]
path = "{store}"

[[subnets]]
network = "198.18.0.0/24"
interface = "lo"
server_id = "198.18.0.1"
routers = ["198.18.0.1"]
pools = ["198.18.0.100-198.18.0.119"]

[api]
listen = "127.0.0.1:{api_port}"
keys = ["{KEY}"]
{api_extra}
"#,
            store = dir.path().join("leases.db").display(),
        );
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
        let base = format!("http://127.0.0.1:{api_port}");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let s = Self {
            dir,
            config,
            dhcp: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            origin: base.clone(),
            base,
            client,
            stop: Some(stop_tx),
            task: Some(task),
        };
        for _ in 0..100 {
            let up = s
                .client
                .get(format!("{}/health", s.base))
                .header("X-Api-Key", KEY)
                .send()
                .await;
            if up.is_ok() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("API did not come up on {}", s.base);
    }

    /// A request to `path` with `headers` (and a JSON `body`).
    async fn req(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    /// Logs in with `key` (from the dashboard's origin); returns the response.
    async fn login(&self, key: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/ui/login", self.base))
            .header("Origin", &self.origin)
            .form(&[("key", key)])
            .send()
            .await
            .unwrap()
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

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Every dashboard answer: strict CSP, no framing, no caching (unless a static file).
fn assert_security_headers(h: &HeaderMap, what: &str) {
    let csp = header(h, "content-security-policy");
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe-inline"),
        "{what}: CSP {csp:?}"
    );
    assert_eq!(header(h, "x-frame-options"), "DENY", "{what}");
    assert_eq!(header(h, "x-content-type-options"), "nosniff", "{what}");
}

fn packet(t: MessageType, mac: [u8; 6], xid: u32, extra: &[(u8, Vec<u8>)]) -> Vec<u8> {
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
        ciaddr: Ipv4Addr::UNSPECIFIED,
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

async fn dora(server: SocketAddr, mac: [u8; 6], xid: u32, hostname: &str) -> Ipv4Addr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let host = (code::HOSTNAME, hostname.as_bytes().to_vec());
    let offer = exchange(
        &sock,
        server,
        &packet(MessageType::Discover, mac, xid, std::slice::from_ref(&host)),
        xid,
    )
    .await;
    assert_eq!(offer.message_type(), Some(MessageType::Offer));
    let req = packet(
        MessageType::Request,
        mac,
        xid,
        &[
            (code::REQUESTED_IP, offer.yiaddr.octets().to_vec()),
            (code::SERVER_ID, vec![198, 18, 0, 1]),
            host,
        ],
    );
    let ack = exchange(&sock, server, &req, xid).await;
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    ack.yiaddr
}

/// The session cookie a login answer set (`name=value`), and the whole Set-Cookie line.
fn session_cookie(r: &reqwest::Response) -> (String, String) {
    let line = header(r.headers(), "set-cookie").to_string();
    let pair = line.split(';').next().unwrap().trim().to_string();
    (pair, line)
}

async fn json(r: reqwest::Response) -> Value {
    let text = r.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_csrf_and_the_api_behind_the_dashboard() {
    let s = Server::start("").await;

    // Without a session: pages go to the login form, data is refused, the login form and
    // the static files are open — every answer with the security headers.
    let r = s.req(Method::GET, "/ui/", &[], None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(r.headers(), "location"), "/ui/login");
    assert_security_headers(r.headers(), "/ui/ without a session");
    for path in [
        "/ui/api/overview",
        "/ui/api/session",
        "/ui/api/leases",
        "/ui/api/reservations",
        "/ui/api/live",
        "/ui/api/grid",
    ] {
        let r = s.req(Method::GET, path, &[], None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        // An API key is not a session.
        let r = s.req(Method::GET, path, &[("X-Api-Key", KEY)], None).await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{path} with X-Api-Key"
        );
    }
    let r = s.req(Method::GET, "/ui/login", &[], None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_security_headers(r.headers(), "/ui/login");
    assert_eq!(header(r.headers(), "cache-control"), "no-store");
    let page = r.text().await.unwrap();
    assert!(page.contains("name=\"key\"") && page.contains("type=\"password\""));
    let r = s.req(Method::GET, "/ui/static/app.js", &[], None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(r.headers(), "content-type").starts_with("text/javascript"));
    let etag = header(r.headers(), "etag").to_string();
    let r = s
        .req(
            Method::GET,
            "/ui/static/app.js",
            &[("If-None-Match", &etag)],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    // A login from another origin, or with no Origin at all, is refused before the key is
    // looked at; a wrong key sets no cookie and says only that it was wrong.
    for origin in [None, Some("http://evil.example")] {
        let mut r = s.client.post(format!("{}/ui/login", s.base));
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        let r = r.form(&[("key", KEY)]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "origin {origin:?}");
        assert!(r.headers().get("set-cookie").is_none());
    }
    let r = s.login("not-the-key-0123456789").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("That key was not accepted.")
    );

    // The right key: a session cookie that is HttpOnly, SameSite=Strict, scoped to /ui,
    // random, and not the key.
    let r = s.login(KEY).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(r.headers(), "location"), "/ui/");
    let (cookie, line) = session_cookie(&r);
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(line.contains(attr), "{line}");
    }
    assert!(!line.contains("Secure"), "plain HTTP: {line}");
    let token = cookie.strip_prefix("leased_ui=").unwrap();
    assert_eq!(token.len(), 64);
    assert!(!line.contains(KEY));
    // The cookie is not a key either.
    let r = s
        .req(Method::GET, "/subnets", &[("Cookie", &cookie)], None)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let auth = [("Cookie", cookie.as_str())];
    let r = s.req(Method::GET, "/ui/", &auth, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_security_headers(r.headers(), "/ui/");
    assert_eq!(header(r.headers(), "cache-control"), "no-store");
    let page = r.text().await.unwrap();
    assert!(page.contains("/ui/static/app.js") && !page.contains("<script>"));
    let sess = json(s.req(Method::GET, "/ui/api/session", &auth, None).await).await;
    let csrf = sess["csrf"].as_str().unwrap().to_string();
    assert_eq!(csrf.len(), 64);
    assert_ne!(csrf, token);

    // A client binds; the dashboard's overview, grid, search and history see it.
    let mac = [2, 0, 0, 0, 7, 1];
    let ip = dora(s.dhcp, mac, 0x7001, "dash-host").await;
    let mut lease = Value::Null;
    for _ in 0..60 {
        lease = json(
            s.req(
                Method::GET,
                "/ui/api/leases?mac=02:00:00:00:07:01",
                &auth,
                None,
            )
            .await,
        )
        .await;
        if lease["total"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lease["leases"][0]["ip"], ip.to_string(), "{lease}");
    assert_eq!(lease["leases"][0]["hostname"], "dash-host");
    // The very same answer as the API's own /leases.
    let api = json(
        s.req(
            Method::GET,
            "/leases?mac=02:00:00:00:07:01",
            &[("X-Api-Key", KEY)],
            None,
        )
        .await,
    )
    .await;
    assert_eq!(api, lease);
    let found = json(
        s.req(Method::GET, "/ui/api/leases?hostname=DASH", &auth, None)
            .await,
    )
    .await;
    assert_eq!(found["total"], 1);
    let found = json(
        s.req(Method::GET, "/ui/api/leases?ip=198.18.0.0/24", &auth, None)
            .await,
    )
    .await;
    assert_eq!(found["total"], 1);
    let r = s
        .req(Method::GET, "/ui/api/leases?mac=nonsense", &auth, None)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let ov = json(s.req(Method::GET, "/ui/api/overview", &auth, None).await).await;
    assert_eq!(ov["subnets"][0]["subnet"], "198.18.0.0/24");
    assert_eq!(ov["subnets"][0]["ips"]["active"], 1);
    assert_eq!(ov["subnets"][0]["pools"][0]["assigned"], 1);
    assert_eq!(ov["subnets"][0]["pools"][0]["total"], 20);
    let g = json(s.req(Method::GET, "/ui/api/grid", &auth, None).await).await;
    let cells = g["cells"].as_str().unwrap();
    assert_eq!(
        (cells.len(), g["first"].as_str()),
        (256, Some("198.18.0.0"))
    );
    let at = |n: u8| cells.chars().nth(usize::from(n)).unwrap();
    assert_eq!(at(ip.octets()[3]), 'L', "{cells:?}");
    assert_eq!((at(0), at(1), at(255), at(50)), ('X', 'X', 'X', ' '));
    assert_eq!(at(119), '.');
    let r = s
        .req(
            Method::GET,
            "/ui/api/grid?subnet=198.19.0.0/24",
            &auth,
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let mut hist = Value::Null;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        hist = json(
            s.req(
                Method::GET,
                "/ui/api/history?mac=02-00-00-00-07-01",
                &auth,
                None,
            )
            .await,
        )
        .await;
        if hist["records"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hist["source"], "file", "{hist}");
    assert_eq!(hist["records"][0]["event"], "ack_new", "{hist}");
    assert_eq!(hist["records"][0]["ip"], ip.to_string());
    let r = s.req(Method::GET, "/ui/api/history", &auth, None).await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "history needs a mac or an ip"
    );

    // Writes: a same-origin Origin and the session's CSRF token, both, every time.
    let body = json!({"mac": "02:00:00:00:07:02", "ip": "198.18.0.20", "hostname": "dash-printer"});
    let origin = ("Origin", s.origin.as_str());
    let token_h = ("X-CSRF-Token", csrf.as_str());
    for (what, headers) in [
        ("no CSRF token", vec![auth[0], origin]),
        (
            "a wrong CSRF token",
            vec![auth[0], origin, ("X-CSRF-Token", token)],
        ),
        ("no Origin", vec![auth[0], token_h]),
        (
            "another Origin",
            vec![auth[0], token_h, ("Origin", "http://evil.example")],
        ),
        (
            "a cross-site fetch",
            vec![auth[0], token_h, origin, ("Sec-Fetch-Site", "cross-site")],
        ),
    ] {
        let r = s
            .req(
                Method::POST,
                "/ui/api/reservations",
                &headers,
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{what}");
    }
    let before = std::fs::read_to_string(&s.config).unwrap();
    assert!(
        !before.contains("198.18.0.20"),
        "a refused write wrote nothing"
    );
    let write = [auth[0], origin, token_h];
    let r = s
        .req(Method::POST, "/ui/api/reservations", &write, Some(body))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_security_headers(r.headers(), "POST /ui/api/reservations");
    let created = json(r).await;
    assert_eq!(created["ip"], "198.18.0.20");
    // It is the API's reservation: GET /reservations with the key shows it, from the file.
    let listed = json(
        s.req(
            Method::GET,
            "/reservations/198.18.0.20",
            &[("X-Api-Key", KEY)],
            None,
        )
        .await,
    )
    .await;
    assert_eq!(listed["hostname"], "dash-printer");
    assert!(
        std::fs::read_to_string(&s.config)
            .unwrap()
            .starts_with("# dashboard test config")
    );
    // The loader's own errors come back as they do from the API.
    let r = s
        .req(
            Method::POST,
            "/ui/api/reservations",
            &write,
            Some(json!({"mac": "02:00:00:00:07:03", "ip": "198.18.5.5"})),
        )
        .await;
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = s
        .req(
            Method::PUT,
            "/ui/api/reservations/198.18.0.20",
            &write,
            Some(json!({"mac": "02:00:00:00:07:02", "hostname": "renamed", "note": "edited in the UI"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["hostname"], "renamed");
    let list = json(
        s.req(Method::GET, "/ui/api/reservations", &auth, None)
            .await,
    )
    .await;
    assert_eq!(list[0]["note"], "edited in the UI", "{list}");
    let r = s
        .req(
            Method::DELETE,
            "/ui/api/reservations/198.18.0.20",
            &write,
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = s
        .req(
            Method::DELETE,
            "/ui/api/reservations/198.18.0.20",
            &write,
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The network panel: monitors off, no export, and the marked place for HA.
    let net = json(s.req(Method::GET, "/ui/api/network", &auth, None).await).await;
    assert_eq!(net["rogue_enabled"], false);
    assert_eq!(net["rogue_servers"], json!([]));
    assert_eq!(net["export"], json!([]));
    assert_eq!(net["ha"]["configured"], false);

    // The live stream: the past samples first, then one a second.
    let mut live = s.req(Method::GET, "/ui/api/live", &auth, None).await;
    assert_eq!(live.status(), StatusCode::OK);
    assert!(header(live.headers(), "content-type").starts_with("text/event-stream"));
    let mut text = String::new();
    let t0 = Instant::now();
    while !(text.contains("event: history") && text.contains("event: tick")) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "stream so far: {text}"
        );
        let chunk = tokio::time::timeout(Duration::from_secs(5), live.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let tick = text
        .split("event: tick\ndata: ")
        .nth(1)
        .and_then(|t| t.lines().next())
        .unwrap();
    let tick: Value = serde_json::from_str(tick).unwrap();
    assert!(
        tick["t"].as_u64().unwrap() > 0 && tick["discover"].is_u64(),
        "{tick}"
    );

    // Logout: the cookie, the CSRF token and the open stream all stop working.
    let r = s.req(Method::POST, "/ui/logout", &write, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(header(r.headers(), "set-cookie").contains("Max-Age=0"));
    let r = s.req(Method::GET, "/ui/api/session", &auth, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s.req(Method::GET, "/ui/", &auth, None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let replay = json!({"mac": "02:00:00:00:07:04", "ip": "198.18.0.21"});
    let r = s
        .req(Method::POST, "/ui/api/reservations", &write, Some(replay))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a replayed write");
    assert!(
        !std::fs::read_to_string(&s.config)
            .unwrap()
            .contains("198.18.0.21")
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match live.chunk().await {
                Ok(Some(_)) => continue,
                _ => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the live stream outlived its session");
    assert!(s.dir.path().exists());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_earn_a_back_off() {
    let s = Server::start("").await;
    for i in 0..3 {
        let r = s.login(&format!("wrong-key-number-{i}-0123")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "free failure {i}");
    }
    let r = s.login("wrong-key-number-4-0123").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // While refused, even the right key is not looked at.
    let r = s.login(KEY).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = header(r.headers(), "retry-after").parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(r.headers().get("set-cookie").is_none());
    // Once the refusal has run out, the right key opens a session and clears the count.
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(200)).await;
    let r = s.login(KEY).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(header(r.headers(), "set-cookie").starts_with("leased_ui="));
    let r = s.login("wrong-key-again-0123456").await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the count starts afresh"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_can_be_turned_off() {
    let s = Server::start("ui = false").await;
    // No dashboard: /ui is just an unknown API route, behind the key like every other.
    let r = s.req(Method::GET, "/ui/login", &[], None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s
        .req(Method::GET, "/ui/login", &[("X-Api-Key", KEY)], None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = s.login(KEY).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    s.shutdown().await;
}
