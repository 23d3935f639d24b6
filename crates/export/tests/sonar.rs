//! The exporter against a local HTTP server that checks what Sonar's API documents (path,
//! HTTP Basic, the JSON shape) and records every batch: each binding arrives exactly once,
//! expirations exactly once, nothing is lost while the server fails or is down (across an
//! exporter restart), and nothing is sent again after a 2xx. Also the router endpoint.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use leased_config::{ExportSettings, RouterCredential, Secret, SonarSettings};
use leased_core::{BindingEvent, BindingKind, HwAddr, Timestamp};
use leased_export::{Exporter, router, sink::SONAR_PATH};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// What the fake Sonar saw.
#[derive(Default)]
struct Seen {
    /// Accepted batches (2xx), each the `data` items.
    batches: Vec<Vec<Value>>,
    /// Requests refused on purpose (500).
    refused: usize,
    /// Protocol violations (wrong path, auth or shape): must stay empty.
    violations: Vec<String>,
}

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Seen>>,
    /// Status to answer with.
    status: Arc<AtomicU16>,
}

fn check_item(v: &Value) -> Result<(), String> {
    let o = v.as_object().ok_or("item is not an object")?;
    let keys: Vec<&str> = o.keys().map(String::as_str).collect();
    if keys != ["expired", "ip_address", "mac_address", "remote_id"] {
        return Err(format!("item keys {keys:?}"));
    }
    o["expired"].as_bool().ok_or("expired is not a bool")?;
    o["ip_address"]
        .as_str()
        .and_then(|s| s.parse::<Ipv4Addr>().ok())
        .ok_or("ip_address is not an IPv4 address")?;
    let mac_ok = |s: &str| {
        s.len() == 17
            && s.split(':').all(|p| {
                p.len() == 2
                    && p.chars()
                        .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
            })
    };
    let mac = o["mac_address"]
        .as_str()
        .ok_or("mac_address is not a string")?;
    if !mac_ok(mac) {
        return Err(format!("mac_address {mac:?} is not AA:BB:…"));
    }
    match &o["remote_id"] {
        Value::Null => {}
        Value::String(r) if mac_ok(r) && r != mac => {}
        other => return Err(format!("remote_id {other}")),
    }
    Ok(())
}

async fn batch(State(f): State<Fake>, headers: HeaderMap, body: String) -> (StatusCode, String) {
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("sonar-user:sonar-pass")
    );
    let mut seen = f.seen.lock().unwrap();
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
        seen.violations.push("bad Authorization".into());
        return (StatusCode::UNAUTHORIZED, String::new());
    }
    if !headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"))
    {
        seen.violations.push("not application/json".into());
    }
    let status = f.status.load(Ordering::SeqCst);
    if status != 200 {
        seen.refused += 1;
        return (StatusCode::from_u16(status).unwrap(), "down".into());
    }
    let v: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            seen.violations.push(format!("body is not JSON: {e}"));
            return (StatusCode::BAD_REQUEST, String::new());
        }
    };
    let Some(data) = v.get("data").and_then(Value::as_array) else {
        seen.violations.push(format!("no data array: {v}"));
        return (StatusCode::UNPROCESSABLE_ENTITY, String::new());
    };
    for item in data {
        if let Err(e) = check_item(item) {
            seen.violations.push(e);
        }
    }
    seen.batches.push(data.clone());
    (StatusCode::OK, "{}".into())
}

/// Starts the fake Sonar on `addr` (port 0: any); returns its address and a stopper.
async fn fake_sonar(fake: Fake, addr: SocketAddr) -> (SocketAddr, oneshot::Sender<()>) {
    let app = Router::new()
        .route(SONAR_PATH, post(batch))
        .fallback(|uri: axum::http::Uri| async move {
            (StatusCode::NOT_FOUND, format!("wrong path {uri}"))
        })
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let local = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    (local, tx)
}

fn settings(dir: &Path, url: &str) -> ExportSettings {
    ExportSettings {
        outbox: dir.to_path_buf(),
        sonar: Some(SonarSettings {
            url: url.to_string(),
            username: "sonar-user".into(),
            password: Secret::Plain("sonar-pass".into()),
            interval: 1,
            timeout: 2,
            chunk_size: 7,
        }),
        webhook: None,
        routers: vec![],
        max_concurrent_auth: None,
    }
}

fn bound(i: u16, lease: u32, now: u64) -> BindingEvent {
    let [hi, lo] = i.to_be_bytes();
    BindingEvent {
        kind: BindingKind::Bound,
        mac: HwAddr(vec![2, 0, 0, 0, hi, lo]),
        ip: Ipv4Addr::new(198, 18, hi, lo),
        at: Timestamp(now),
        lease_time: Some(lease),
        expires: Some(Timestamp(now + u64::from(lease))),
        remote_id: i.is_multiple_of(3).then(|| vec![0xaa, 0, 0, 0, hi, lo]),
        circuit_id: Some(b"eth1".to_vec()),
        hostname: None,
        giaddr: None,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A running exporter with its event sender and stopper.
struct Running {
    tx: mpsc::UnboundedSender<BindingEvent>,
    /// The destination's live counters (what `/metrics` shows).
    metrics: Arc<leased_export::SinkMetrics>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn start(s: &ExportSettings) -> Running {
    let exporter = Exporter::open(s).unwrap();
    let m = exporter.metrics();
    assert_eq!(m.len(), 1, "one destination per test");
    let metrics = Arc::clone(&m[0].1);
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(exporter.run(rx, async move {
        let _ = stop_rx.await;
    }));
    Running {
        tx,
        metrics,
        stop,
        task,
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// (mac, ip, expired) of every accepted item, in order.
fn items(seen: &Seen) -> Vec<(String, String, bool)> {
    seen.batches
        .iter()
        .flatten()
        .map(|v| {
            (
                v["mac_address"].as_str().unwrap().to_string(),
                v["ip_address"].as_str().unwrap().to_string(),
                v["expired"].as_bool().unwrap(),
            )
        })
        .collect()
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_binding_once_then_each_expiry_once() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        seen: Arc::default(),
        status: Arc::new(AtomicU16::new(200)),
    };
    let (addr, _srv) = fake_sonar(fake.clone(), "127.0.0.1:0".parse().unwrap()).await;
    let s = settings(dir.path(), &format!("http://{addr}"));
    let run = start(&s);
    let t0 = now();
    // 40 bindings; 20 renewed once (the renewal is the same binding: last update wins or it
    // arrives as one more bound, never as an expiry); lease time 3 s.
    for i in 1..=40u16 {
        run.tx.send(bound(i, 3, t0)).unwrap();
    }
    for i in 1..=20u16 {
        run.tx.send(bound(i, 3, t0)).unwrap();
    }
    let seen = Arc::clone(&fake.seen);
    wait_until("40 expiries", Duration::from_secs(20), || {
        items(&seen.lock().unwrap()).iter().filter(|x| x.2).count() >= 40
    })
    .await;
    // A server-side expiry arriving after the tracker's must not be reported again.
    for i in 1..=40u16 {
        let mut e = bound(i, 3, t0);
        e.kind = BindingKind::Expired;
        run.tx.send(e).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    run.stop().await;
    let seen = fake.seen.lock().unwrap();
    assert!(seen.violations.is_empty(), "{:?}", seen.violations);
    let all = items(&seen);
    let mut bound_count: BTreeMap<&str, usize> = BTreeMap::new();
    let mut expired_count: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, ip, expired) in &all {
        *if *expired {
            &mut expired_count
        } else {
            &mut bound_count
        }
        .entry(ip.as_str())
        .or_default() += 1;
    }
    assert_eq!(bound_count.len(), 40, "every binding seen");
    // A binding bound once is reported once; a renewed one once per record unless both fall in
    // one chunk (the last event per binding wins within a chunk), never more.
    for (ip, n) in &bound_count {
        let i: u16 = ip.rsplit('.').next().unwrap().parse().unwrap();
        let most = if i <= 20 { 2 } else { 1 };
        assert!(
            (1..=most).contains(n),
            "{ip} bound {n} times: {bound_count:?}"
        );
    }
    // Each binding's expiry comes after all of its bound items.
    for ip in bound_count.keys() {
        let last_bound = all.iter().rposition(|x| x.1 == *ip && !x.2).unwrap();
        let expiry = all.iter().position(|x| x.1 == *ip && x.2).unwrap();
        assert!(last_bound < expiry, "{ip}: bound after its expiry");
    }
    assert_eq!(expired_count.len(), 40, "every expiry seen");
    assert!(
        expired_count.values().all(|n| *n == 1),
        "each expiry once: {expired_count:?}"
    );
    // Chunks of at most 7.
    assert!(seen.batches.iter().all(|b| b.len() <= 7));
    // remote_id: MAC form for every third binding, null otherwise.
    let with_rid = seen
        .batches
        .iter()
        .flatten()
        .filter(|v| !v["expired"].as_bool().unwrap() && !v["remote_id"].is_null())
        .map(|v| v["ip_address"].as_str().unwrap().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(with_rid, 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_lost_while_failing_or_down_and_nothing_sent_twice() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        seen: Arc::default(),
        status: Arc::new(AtomicU16::new(500)),
    };
    let (addr, srv) = fake_sonar(fake.clone(), "127.0.0.1:0".parse().unwrap()).await;
    let s = settings(dir.path(), &format!("http://{addr}"));
    let t0 = now();

    // Phase 1: Sonar answers 500. Events queue up; attempts are refused.
    let run = start(&s);
    for i in 1..=25u16 {
        run.tx.send(bound(i, 3600, t0)).unwrap();
    }
    let seen = Arc::clone(&fake.seen);
    wait_until("a refused upload", Duration::from_secs(10), || {
        seen.lock().unwrap().refused >= 1
    })
    .await;
    let m = run.metrics.snapshot();
    assert!(m.uploads_failed >= 1, "{m:?}");
    assert_eq!((m.uploads_ok, m.entries_sent), (0, 0), "{m:?}");
    assert_eq!(m.outbox_depth, 25, "{m:?}");
    assert_eq!(m.last_success, None);
    // Phase 2: the exporter restarts (as leased would), Sonar is stopped entirely.
    run.stop().await;
    let _ = srv.send(());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let st = leased_export::status(&s).unwrap();
    assert_eq!(st[0].queue_depth, 25, "all queued across the restart");
    assert!(st[0].status.last_error.is_some());
    assert_eq!(st[0].status.last_success, None);
    let run = start(&s);
    assert_eq!(
        run.metrics.snapshot().outbox_depth,
        25,
        "depth read at open"
    );
    for i in 26..=30u16 {
        run.tx.send(bound(i, 3600, t0)).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(fake.seen.lock().unwrap().batches.is_empty());
    let m = run.metrics.snapshot();
    assert_eq!(m.outbox_depth, 30, "{m:?}");
    assert!(m.uploads_failed >= 1, "Sonar stopped: {m:?}");
    let failed_before = m.uploads_failed;
    // Phase 3: Sonar comes back on the same port and answers 200: everything arrives.
    fake.status.store(200, Ordering::SeqCst);
    let (_, _srv2) = fake_sonar(fake.clone(), addr).await;
    wait_until("30 bindings", Duration::from_secs(30), || {
        items(&seen.lock().unwrap()).len() >= 30
    })
    .await;
    // The last 2xx is counted once the acknowledgement is durable, just after Sonar saw it.
    let metrics = Arc::clone(&run.metrics);
    wait_until("the last upload counted", Duration::from_secs(5), || {
        metrics.snapshot().outbox_depth == 0
    })
    .await;
    // The counters match what the fake Sonar accepted (chunks of at most 7: 5 uploads).
    let m = run.metrics.snapshot();
    let accepted = fake.seen.lock().unwrap().batches.len() as u64;
    assert_eq!(m.uploads_ok, accepted, "{m:?}");
    assert_eq!(m.uploads_ok, 5, "{m:?}");
    assert_eq!(m.entries_sent, 30, "{m:?}");
    assert_eq!(m.outbox_depth, 0, "{m:?}");
    assert_eq!(
        m.uploads_failed, failed_before,
        "no failure once Sonar is back: {m:?}"
    );
    let last = m.last_success.expect("a success");
    assert!(last >= t0 && last <= now(), "{last} not in [{t0}, now]");
    assert!(m.upload_seconds_sum > 0.0, "{m:?}");
    run.stop().await;
    // Phase 4: restart again; nothing already acknowledged is sent again.
    let before = fake.seen.lock().unwrap().batches.len();
    let run = start(&s);
    tokio::time::sleep(Duration::from_secs(3)).await;
    run.stop().await;
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.batches.len(), before, "nothing re-sent after a 2xx");
    assert!(seen.violations.is_empty(), "{:?}", seen.violations);
    let all = items(&seen);
    let mut ips: Vec<&str> = all.iter().map(|x| x.1.as_str()).collect();
    ips.sort_unstable();
    let n = ips.len();
    ips.dedup();
    assert_eq!((n, ips.len()), (30, 30), "each of 30 bindings exactly once");
    let st = leased_export::status(&s).unwrap();
    assert_eq!(st[0].queue_depth, 0);
    assert!(st[0].status.last_success.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_many_chunks_is_delivered_chunk_by_chunk_exactly_once() {
    use std::os::unix::fs::PermissionsExt;
    const N: u16 = 3000;
    const CHUNK: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        seen: Arc::default(),
        status: Arc::new(AtomicU16::new(503)),
    };
    let (addr, _srv) = fake_sonar(fake.clone(), "127.0.0.1:0".parse().unwrap()).await;
    let mut s = settings(dir.path(), &format!("http://{addr}"));
    s.sonar.as_mut().unwrap().chunk_size = CHUNK;
    let run = start(&s);
    let t0 = now();
    // A backlog of N distinct bindings builds up while Sonar refuses.
    for i in 1..=N {
        run.tx.send(bound(i, 3600, t0)).unwrap();
    }
    let m = Arc::clone(&run.metrics);
    wait_until("the backlog", Duration::from_secs(20), || {
        m.snapshot().outbox_depth == u64::from(N) && m.snapshot().uploads_failed >= 1
    })
    .await;
    let log = dir.path().join("sonar/log");
    assert!(std::fs::metadata(&log).unwrap().len() > 500_000);
    assert!(fake.seen.lock().unwrap().batches.is_empty());
    // Sonar recovers: the backlog goes out in chunks of at most CHUNK, in order.
    fake.status.store(200, Ordering::SeqCst);
    let seen = Arc::clone(&fake.seen);
    wait_until("the whole backlog", Duration::from_secs(60), || {
        items(&seen.lock().unwrap()).len() >= usize::from(N)
    })
    .await;
    wait_until("depth 0", Duration::from_secs(10), || {
        m.snapshot().outbox_depth == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    run.stop().await;
    let seen = fake.seen.lock().unwrap();
    assert!(seen.violations.is_empty(), "{:?}", seen.violations);
    assert!(
        seen.batches.iter().all(|b| b.len() <= CHUNK),
        "chunks of at most {CHUNK}"
    );
    assert!(
        seen.batches.len() >= usize::from(N) / CHUNK,
        "{} uploads",
        seen.batches.len()
    );
    let all = items(&seen);
    let want: Vec<String> = (1..=N)
        .map(|i| {
            let [hi, lo] = i.to_be_bytes();
            format!("198.18.{hi}.{lo}")
        })
        .collect();
    let got: Vec<String> = all.iter().map(|x| x.1.clone()).collect();
    assert_eq!(got, want, "every entry exactly once, oldest first");
    let m = m.snapshot();
    assert_eq!(
        (m.entries_sent, m.uploads_ok),
        (u64::from(N), seen.batches.len() as u64)
    );
    // All acknowledged: the log was compacted, and it and its companions are owner-only.
    assert_eq!(std::fs::metadata(&log).unwrap().len(), 8);
    for f in [
        "sonar/log",
        "sonar/ack",
        "sonar/status.json",
        "bindings.journal",
    ] {
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let st = leased_export::status(&s).unwrap();
    assert_eq!(st[0].queue_depth, 0);
    assert_eq!(st[0].status.delivered, u64::from(N));
}

// ---------------------------------------------------------------------------------------------
// Router endpoint.

struct Endpoint {
    base: String,
    dir: tempfile::TempDir,
    settings: ExportSettings,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

async fn endpoint() -> Endpoint {
    let dir = tempfile::tempdir().unwrap();
    // Sonar unreachable (port 9 on loopback): entries stay in the outbox, where the test
    // counts them.
    let s = settings(dir.path(), "http://127.0.0.1:9");
    let exporter = Exporter::open(&s).unwrap();
    let creds = vec![RouterCredential {
        username: "mikrotik-1".into(),
        password_hash: router::hash_password("router-secret").unwrap(),
    }];
    let app = router::endpoint(exporter.handle(), creds, Some(2)).unwrap();
    let (_tx, rx) = mpsc::unbounded_channel();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(exporter.run(rx, async move {
        let _ = stop_rx.await;
    }));
    std::mem::forget(_tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Endpoint {
        base: format!("http://{addr}{}", router::PATH),
        dir,
        settings: s,
        stop: Some(stop),
        task: Some(task),
    }
}

impl Endpoint {
    fn depth(&self) -> usize {
        leased_export::status(&self.settings).unwrap()[0].queue_depth
    }
    /// The queued entries (read from the outbox file).
    fn queued(&self) -> Vec<BindingEvent> {
        leased_export::outbox::Outbox::read_pending(&self.dir.path().join("sonar")).unwrap()
    }
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_endpoint_forms_auth_and_validation() {
    let ep = endpoint().await;
    let http = reqwest::Client::new();
    let ok_auth = |r: reqwest::RequestBuilder| r.basic_auth("mikrotik-1", Some("router-secret"));

    // The MikroTik script's GET forms: unbind (expired=1, no remote_id) and bind with an
    // (empty or MAC) agent-remote-id.
    let r = ok_auth(http.get(format!(
        "{}?ip_address=198.18.0.50&leased_mac_address=0a:00:3e:b1:45:2b&expired=1",
        ep.base
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        serde_json::json!({"success": true})
    );
    let r = ok_auth(http.get(format!(
        "{}?ip_address=198.18.0.51&leased_mac_address=A:0:3E:B1:45:2C&remote_id=&expired=0",
        ep.base
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = ok_auth(http.get(format!(
        "{}?ip_address=198.18.0.52&leased_mac_address=0a003eb1452d&remote_id=aa-bb-cc-dd-ee-ff&expired=0",
        ep.base
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    // POST JSON with boolean and numeric expired; POST form.
    let r = ok_auth(http.post(&ep.base))
        .json(&serde_json::json!({"leased_mac_address": "0a00.3eb1.452e", "ip_address": "198.18.0.53", "expired": true, "remote_id": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = ok_auth(http.post(&ep.base))
        .json(&serde_json::json!({"leased_mac_address": "0a:00:3e:b1:45:2f", "ip_address": "198.18.0.54", "expired": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = ok_auth(http.post(&ep.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("leased_mac_address=0a%3A00%3A3e%3Ab1%3A45%3A30&ip_address=198.18.0.55&expired=false")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(ep.depth(), 6);
    let q = ep.queued();
    let summary: Vec<(String, Ipv4Addr, BindingKind, Option<Vec<u8>>)> = q
        .iter()
        .map(|e| (e.mac.to_string(), e.ip, e.kind, e.remote_id.clone()))
        .collect();
    assert_eq!(
        summary[0],
        (
            "0a:00:3e:b1:45:2b".into(),
            Ipv4Addr::new(198, 18, 0, 50),
            BindingKind::Expired,
            None
        )
    );
    assert_eq!(summary[1].2, BindingKind::Bound);
    assert_eq!(summary[1].3, None, "empty remote_id is null");
    assert_eq!(summary[2].3, Some(vec![0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]));
    assert_eq!(summary[3].2, BindingKind::Expired);
    assert_eq!(summary[4].2, BindingKind::Bound);
    assert_eq!(summary[5].0, "0a:00:3e:b1:45:30");

    // Wrong credentials, unknown user, no auth, malformed header: 401, nothing queued.
    for req in [
        http.get(format!(
            "{}?ip_address=198.18.0.60&leased_mac_address=02:00:00:00:00:60&expired=0",
            ep.base
        ))
        .basic_auth("mikrotik-1", Some("wrong")),
        http.get(format!(
            "{}?ip_address=198.18.0.60&leased_mac_address=02:00:00:00:00:60&expired=0",
            ep.base
        ))
        .basic_auth("nobody", Some("router-secret")),
        http.get(format!(
            "{}?ip_address=198.18.0.60&leased_mac_address=02:00:00:00:00:60&expired=0",
            ep.base
        )),
        http.post(&ep.base)
            .header("authorization", "Basic !!!")
            .json(&serde_json::json!({})),
        http.post(&ep.base)
            .basic_auth("", Some(""))
            .json(&serde_json::json!({})),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            serde_json::json!({"message": "Unauthenticated."})
        );
    }
    assert_eq!(ep.depth(), 6);

    // Every validation case: 422 with the original's messages, nothing queued.
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            serde_json::json!({"ip_address": "198.18.0.1", "expired": 0}),
            "leased_mac_address",
            "The leased mac address field is required.",
        ),
        (
            serde_json::json!({"leased_mac_address": "", "ip_address": "198.18.0.1", "expired": 0}),
            "leased_mac_address",
            "The leased mac address field is required.",
        ),
        (
            serde_json::json!({"leased_mac_address": "zz:00:00:00:00:00", "ip_address": "198.18.0.1", "expired": 0}),
            "leased_mac_address",
            "The leased mac address must be a valid MAC address.",
        ),
        (
            serde_json::json!({"leased_mac_address": "00:11:22:33:44", "ip_address": "198.18.0.1", "expired": 0}),
            "leased_mac_address",
            "The leased mac address must be a valid MAC address.",
        ),
        (
            serde_json::json!({"leased_mac_address": "00:11:22:33:44:55", "expired": 0}),
            "ip_address",
            "The ip address field is required.",
        ),
        (
            serde_json::json!({"leased_mac_address": "00:11:22:33:44:55", "ip_address": "198.18.0.256", "expired": 0}),
            "ip_address",
            "The ip address must be a valid IP address.",
        ),
        (
            serde_json::json!({"leased_mac_address": "00:11:22:33:44:55", "ip_address": "2001:db8::1", "expired": 0}),
            "ip_address",
            "The ip address must be a valid IPv4 address.",
        ),
        (
            serde_json::json!({"leased_mac_address": "00:11:22:33:44:55", "ip_address": "198.18.0.1"}),
            "expired",
            "The expired field is required.",
        ),
        (
            serde_json::json!({"leased_mac_address": "00:11:22:33:44:55", "ip_address": "198.18.0.1", "expired": 2}),
            "expired",
            "The expired field must be true or false.",
        ),
        (
            serde_json::json!({"leased_mac_address": "00:11:22:33:44:55", "ip_address": "198.18.0.1", "expired": "yes"}),
            "expired",
            "The expired field must be true or false.",
        ),
        (
            serde_json::json!({"leased_mac_address": "00:11:22:33:44:55", "ip_address": "198.18.0.1", "expired": 0, "remote_id": "not-a-mac"}),
            "remote_id",
            "The remote id must be a valid MAC address.",
        ),
        (
            serde_json::json!({"leased_mac_address": 5, "ip_address": "198.18.0.1", "expired": 0}),
            "leased_mac_address",
            "The leased mac address must be a string.",
        ),
    ];
    for (body, field, message) in cases {
        let r = ok_auth(http.post(&ep.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["message"], "The given data was invalid.");
        let msgs: Vec<&str> = v["errors"][field]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        assert!(msgs.contains(&message), "{body}: {v}");
    }
    // The same through GET.
    let r = ok_auth(http.get(format!("{}?leased_mac_address=nope&expired=1", ep.base)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert!(v["errors"]["leased_mac_address"].is_array() && v["errors"]["ip_address"].is_array());
    // Other methods are refused.
    let r = ok_auth(http.put(&ep.base)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(ep.depth(), 6, "failed checks queue nothing");
    ep.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Webhook.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_gets_full_events_with_its_headers_and_the_same_guarantees() {
    use leased_config::WebhookSettings;
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let fail = Arc::new(AtomicU16::new(503));
    let app = {
        let seen = Arc::clone(&seen);
        let fail = Arc::clone(&fail);
        Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: String| {
                let seen = Arc::clone(&seen);
                let fail = Arc::clone(&fail);
                async move {
                    if headers.get("authorization").and_then(|v| v.to_str().ok())
                        != Some("Bearer t0k")
                    {
                        return StatusCode::UNAUTHORIZED;
                    }
                    let code = fail.load(Ordering::SeqCst);
                    if code != 200 {
                        return StatusCode::from_u16(code).unwrap();
                    }
                    let v: Value = serde_json::from_str(&body).unwrap();
                    seen.lock()
                        .unwrap()
                        .extend(v["events"].as_array().unwrap().iter().cloned());
                    StatusCode::NO_CONTENT
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let s = ExportSettings {
        outbox: dir.path().to_path_buf(),
        sonar: None,
        webhook: Some(WebhookSettings {
            url: format!("http://{addr}/hook"),
            headers: vec![("Authorization".into(), "Bearer t0k".into())],
            interval: 1,
            timeout: 2,
            chunk_size: 100,
        }),
        routers: vec![],
        max_concurrent_auth: None,
    };
    let run = start(&s);
    let t0 = now();
    let mut ev = bound(3, 3600, t0);
    ev.hostname = Some("cam".into());
    ev.giaddr = Some(Ipv4Addr::new(198, 18, 9, 1));
    run.tx.send(ev.clone()).unwrap();
    let mut rel = ev.clone();
    rel.kind = BindingKind::Released;
    rel.ip = Ipv4Addr::new(198, 18, 0, 99); // never bound: not reported
    run.tx.send(rel).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(seen.lock().unwrap().is_empty(), "503: nothing accepted yet");
    fail.store(200, Ordering::SeqCst);
    let seen2 = Arc::clone(&seen);
    wait_until("webhook delivery", Duration::from_secs(15), || {
        !seen2.lock().unwrap().is_empty()
    })
    .await;
    run.stop().await;
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let e = &got[0];
    assert_eq!(e["event"], "bound");
    assert_eq!(e["expired"], false);
    assert_eq!(e["mac_address"], "02:00:00:00:00:03");
    assert_eq!(e["ip_address"], "198.18.0.3");
    assert_eq!(e["lease_time"], 3600);
    assert_eq!(e["expires"], t0 + 3600);
    assert_eq!(e["remote_id"], "AA:00:00:00:00:03");
    assert_eq!(e["remote_id_hex"], "aa0000000003");
    assert_eq!(e["circuit_id"], "eth1");
    assert_eq!(e["hostname"], "cam");
    assert_eq!(e["giaddr"], "198.18.9.1");
    let st = leased_export::status(&s).unwrap();
    assert_eq!((st[0].name, st[0].queue_depth), ("webhook", 0));
    assert!(st[0].status.failures >= 1 && st[0].status.uploads == 1);
}
