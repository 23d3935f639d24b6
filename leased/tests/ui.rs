//! The dashboard in a real headless Chromium (chromedriver, `fantoccini`), against the real
//! `leased serve` in a lab namespace, with real DHCP clients:
//!
//! - `dashboard_in_a_real_browser`: a wrong key is refused and a right one logs in (the
//!   session cookie is HttpOnly, invisible to the page's scripts); the grid shows the address
//!   a real udhcpc just took, with its state under the mouse pointer; the lease is found by
//!   MAC, IP, CIDR and host name, and its history shows the ACK; a reservation added in the
//!   page is what udhcpc gets at its next DISCOVER, then is edited and removed; the live view's
//!   rates move while perfdhcp runs and its hour count covers every ACK perfdhcp received;
//!   the network panel; logout, after which the old cookie opens nothing and a write replayed
//!   with the old CSRF token is refused.
//! - `first_render_of_100000_leases`: a store of 100,000 leases built directly; the
//!   dashboard's first render after login, measured in the page with the Performance API
//!   (navigation start to the `leased:first-render` mark, set after the frame that shows the
//!   grid), is under a second; the grid agrees with `leased stats --grid`.
//!
//! Screenshots of every step go to `target/ui-artifacts/` (looked at, never compared). Root
//! and the peers are needed (namespaces); without them each test prints `SKIP:` (or fails
//! under `CI=true`). Every address is in 198.18.0.0/15, every wait is bounded, and every
//! process (chromedriver, Chromium, clients, the server) runs inside the lab's namespaces,
//! stopped by PID and by the lab's teardown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::useless_vec)]

#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

#[path = "ui/browser.rs"]
mod browser;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use browser::{Browser, in_netns, runtime};
use leased_core::{ClientId, HwAddr, Lease, LeaseState, Timestamp};
use leased_store::{EmbeddedStore, LeaseStore};
use serde_json::Value;
use support::clients::{PerfRun, perfdhcp};
use support::lab::CLI_IF;
use support::server::leased_bin;
use support::{Cfg, Lab, Udhcpc};

const KEY: &str = "ui-browser-key-0123456789";
const API_PORT: u16 = 8067;
const SECS: Duration = Duration::from_secs(15);

/// One browser test at a time: each wants a core, and the timing test wants a quiet machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn base() -> String {
    format!("http://127.0.0.1:{API_PORT}")
}

/// One HTTP/1.1 request over a socket of the calling thread's namespace; (status, body).
fn http(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", API_PORT)).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{API_PORT}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(s, "{head}\r\n{body}").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// Waits (bounded) until the API answers `/health` with `leases` records.
fn wait_api(min_leases: u64) {
    let t0 = Instant::now();
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", API_PORT)) {
            drop(s.flush());
            let (st, body) = http("GET", "/health", &[("X-Api-Key", KEY)], "");
            let n = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["leases"].as_u64());
            if st == 200 && n.is_some_and(|n| n >= min_leases) {
                return;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the API did not come up with {min_leases} leases"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One udhcpc run to `bound` (then it quits); returns its address.
fn udhcpc_lease(lab: &Lab, tag: &str, host: &str, log: &dyn Fn() -> String) -> Ipv4Addr {
    let mut u = Udhcpc::new(lab, &lab.cli_ns, CLI_IF, tag, Some(host));
    u.start(true, true, &[]);
    let ev = u.c.wait_event(0, &["bound"], Duration::from_secs(20));
    let ip = ev
        .and_then(|e| e.ip())
        .unwrap_or_else(|| panic!("udhcpc got no lease\n{}\nlog:\n{}", u.c.diag(), log()));
    u.c.stop();
    ip
}

/// Logs in through the form (the page must show it).
async fn log_in(b: &Browser, key: &str) {
    b.fill("#key", key).await;
    b.click("#login-submit").await;
}

#[test]
fn dashboard_in_a_real_browser() {
    if !gate!("udhcpc", "perfdhcp", "chromium", "chromedriver") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::with_net("198.19.16.0/20");
    let mut cfg = Cfg::for_lab(&lab);
    cfg.lease_time = 3600;
    let last = u32::from(lab.net.broadcast()) - u32::from(lab.net.network());
    cfg.pools = vec![(lab.ip(256), lab.ip(last - 5))];
    cfg.extra = format!("[api]\nlisten = \"127.0.0.1:{API_PORT}\"\nkeys = [\"{KEY}\"]\n");
    let srv = lab.start_server(&cfg.render());
    let mac = lab.mac(0x51, 1);
    lab.set_client_mac(&mac);
    let log = || srv.log();

    in_netns(&lab.srv_ns, || {
        wait_api(0);
        runtime().block_on(async {
            let b = Browser::start(lab.dir(), "dashboard").await;

            // Not logged in: /ui/ sends the browser to the login form.
            b.client.goto(&format!("{}/ui/", base())).await.unwrap();
            b.wait_js(SECS, "return document.getElementById('key')").await;
            assert_eq!(b.path().await, "/ui/login");
            b.shot("01-login").await;

            // A wrong key: refused, no cookie.
            log_in(&b, "this-is-not-the-key-01234").await;
            b.wait_text("#login-error", "not accepted", SECS).await;
            assert_eq!(b.path().await, "/ui/login");
            assert!(b.client.get_named_cookie("leased_ui").await.is_err(), "a cookie for a wrong key");
            b.shot("02-wrong-key").await;

            // The right key: the dashboard, with a session cookie scripts cannot read.
            log_in(&b, KEY).await;
            b.wait_js(SECS, "return document.body.dataset.rendered === '1'").await;
            assert_eq!(b.path().await, "/ui/");
            let cookie = b.client.get_named_cookie("leased_ui").await.expect("session cookie");
            assert_eq!(cookie.http_only(), Some(true));
            assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
            assert_eq!(cookie.value().len(), 64);
            assert_ne!(cookie.value(), KEY);
            let visible = b.js("return document.cookie").await;
            assert!(!visible.as_str().unwrap().contains("leased_ui"), "{visible}");
            let stored = b
                .js("return JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
                .await;
            assert!(!stored.as_str().unwrap().contains(KEY), "the key is kept in the page");
            b.shot("03-overview").await;

            // A real client takes a lease; the grid shows it, its state under the pointer.
            let ip = udhcpc_lease(&lab, "ui1", "ui-client", &log);
            b.click("a[data-tab=overview]").await;
            let offset = u32::from(ip) - u32::from(lab.net.network());
            b.wait_js(SECS, &format!("return window.document.getElementById('grid').dataset.count === '{}' && document.getElementById('grid-count-L') && document.getElementById('grid-count-L').dataset.count === '1'", 1u32 << (32 - lab.net.prefix_len()))).await;
            let geo = b
                .js("const d = document.getElementById('grid').dataset; return [Number(d.perRow), Number(d.cell)]")
                .await;
            let (per_row, cell) = (geo[0].as_f64().unwrap(), geo[1].as_f64().unwrap());
            let x = f64::from(offset % per_row as u32) * cell + cell / 2.0;
            let y = f64::from(offset / per_row as u32) * cell + cell / 2.0;
            b.hover("#grid", x, y).await;
            let tip = b.wait_text("#grid-tip", &mac, SECS).await;
            assert!(tip.contains(&format!("{ip} — bound")) && tip.contains("ui-client"), "{tip}");
            b.shot("04-grid-hover").await;

            // Lease search by MAC, IP, CIDR and host name; the lease's history.
            b.click("a[data-tab=leases]").await;
            let row = format!("#lease-results tbody tr[data-ip='{ip}']");
            for (field, text) in [
                ("auto", mac.clone()),
                ("mac", mac.to_uppercase().replace(':', "-")),
                ("auto", ip.to_string()),
                ("ip", lab.net.to_string()),
                ("auto", "UI-CLIENT".to_string()),
            ] {
                b.client
                    .find(fantoccini::Locator::Css("#search-field"))
                    .await
                    .unwrap()
                    .select_by_value(field)
                    .await
                    .unwrap();
                b.fill("#search-text", &text).await;
                b.click("#search-go").await;
                let t = b.wait_text(&row, "ui-client", SECS).await;
                assert!(t.contains(&mac) && t.contains("bound"), "{field} {text}: {t}");
                b.wait_text("#search-summary", "1 lease", SECS).await;
            }
            for field in ["circuit_id", "remote_id"] {
                b.client
                    .find(fantoccini::Locator::Css("#search-field"))
                    .await
                    .unwrap()
                    .select_by_value(field)
                    .await
                    .unwrap();
                b.fill("#search-text", "eth0/1/2:100").await;
                b.click("#search-go").await;
                b.wait_text("#lease-results tbody", "No lease matches.", SECS).await;
            }
            b.fill("#search-text", &mac).await;
            b.client
                .find(fantoccini::Locator::Css("#search-field"))
                .await
                .unwrap()
                .select_by_value("mac")
                .await
                .unwrap();
            b.click("#search-go").await;
            b.wait_text(&row, "ui-client", SECS).await;
            b.click(&row).await;
            let h = b
                .wait_text("#history tbody tr[data-event='ack_new']", &ip.to_string(), SECS)
                .await;
            assert!(h.contains(&mac), "{h}");
            b.shot("05-lease-history").await;

            // A reservation from the page: udhcpc's next DISCOVER gets it.
            let reserved = lab.ip(50);
            b.click("a[data-tab=reservations]").await;
            b.wait_text("#res-table tbody", "No reservation.", SECS).await;
            b.fill("#res-mac", &mac).await;
            b.fill("#res-ip", &reserved.to_string()).await;
            b.fill("#res-hostname", "ui-reserved").await;
            b.fill("#res-note", "added from the dashboard").await;
            b.click("#res-submit").await;
            b.wait_text("#res-done", &format!("Reserved {reserved}"), SECS).await;
            let r = b
                .wait_text(&format!("#res-table tr[data-ip='{reserved}']"), "ui-reserved", SECS)
                .await;
            assert!(r.contains(&mac) && r.contains("added from the dashboard"), "{r}");
            b.shot("06-reservation-added").await;
            let text = std::fs::read_to_string(&srv.cfg_path).unwrap();
            assert!(text.contains(&format!("ip = \"{reserved}\"")), "{text}");
            let second = udhcpc_lease(&lab, "ui2", "ui-client", &log);
            assert_eq!(second, reserved, "after the reservation\nlog:\n{}", log());

            // Edit it: the new host name and note are what the server has.
            b.click(&format!("#res-table tr[data-ip='{reserved}'] button[data-action=edit]")).await;
            b.fill("#res-hostname", "ui-reserved-2").await;
            b.fill("#res-note", "edited").await;
            b.click("#res-submit").await;
            b.wait_text("#res-done", &format!("Saved {reserved}"), SECS).await;
            b.wait_text(&format!("#res-table tr[data-ip='{reserved}']"), "ui-reserved-2", SECS).await;
            let (st, body) = http("GET", &format!("/reservations/{reserved}"), &[("X-Api-Key", KEY)], "");
            assert_eq!(st, 200, "{body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!((v["hostname"].as_str(), v["note"].as_str()), (Some("ui-reserved-2"), Some("edited")));

            // Live: the rates move while perfdhcp runs; the hour's ACKs cover all it received.
            b.click("a[data-tab=live]").await;
            b.wait_text("#live-state", "Live", SECS).await;
            lab.add_client_addr(&format!("{}/{}", lab.ip(2), lab.net.prefix_len()));
            let acks_before: u64 = b.js("return Number(document.getElementById('live-hour').dataset.ack)").await.as_u64().unwrap_or(0);
            let cli_ns = lab.cli_ns.clone();
            let server = lab.srv_ip;
            let perf = std::thread::spawn(move || {
                perfdhcp(&cli_ns, CLI_IF, server, &PerfRun {
                    rate: 300,
                    clients: 1500,
                    num: 1500,
                    secs: 15,
                    base_mac: "02:ab:00:00:00:00".to_string(),
                })
            });
            let mut max_rate = 0u64;
            let t0 = Instant::now();
            while !perf.is_finished() {
                assert!(t0.elapsed() < Duration::from_secs(60), "perfdhcp ran over a minute");
                let r = b.text("#live-rate-discover").await;
                let n: u64 = r.trim_end_matches("/s").replace(',', "").parse().unwrap_or(0);
                max_rate = max_rate.max(n);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let (out, st) = perf.join().unwrap();
            assert!(st.ra_rcvd > 1000, "perfdhcp completed {} exchanges\n{}", st.ra_rcvd, out.all());
            assert!(max_rate > 50, "the live DISCOVER rate never moved (max {max_rate}/s)");
            // Samples are taken once a second: two more seconds and every ACK is in one.
            let want = acks_before + st.ra_rcvd;
            b.wait_js(SECS, &format!("return Number(document.getElementById('live-hour').dataset.ack) >= {want}")).await;
            let peak: u64 = b.js("return Number(document.getElementById('live-hour').dataset.maxDiscover)").await.as_u64().unwrap();
            assert!(peak >= max_rate, "{peak} < {max_rate}");
            b.shot("07-live").await;

            // The network panel: no monitors configured, no export, and the place for HA.
            b.click("a[data-tab=network]").await;
            b.wait_text("#ha-state", "not configured", SECS).await;
            b.wait_text("#rogue tbody", "No foreign DHCP server seen.", SECS).await;
            b.shot("08-network").await;

            // Remove the reservation from the page (two clicks: arm, confirm).
            b.click("a[data-tab=reservations]").await;
            let remove = format!("#res-table tr[data-ip='{reserved}'] button[data-action=remove]");
            b.wait_js(SECS, &format!("return document.querySelector(\"{remove}\")")).await;
            b.click(&remove).await;
            b.click(&remove).await;
            b.wait_text("#res-done", &format!("Removed the reservation of {reserved}"), SECS).await;
            b.wait_text("#res-table tbody", "No reservation.", SECS).await;
            let text = std::fs::read_to_string(&srv.cfg_path).unwrap();
            assert!(!text.contains(&format!("ip = \"{reserved}\"")), "{text}");

            // Logout. Before it, a write with the session's cookie, CSRF token and Origin
            // passes the door (404: nothing to delete); after it, the same replayed is refused.
            let csrf = b
                .js_async("const done = arguments[arguments.length - 1]; fetch('/ui/api/session').then(r => r.json()).then(s => done(s.csrf));")
                .await;
            let csrf = csrf.as_str().unwrap().to_string();
            let cookie_h = format!("leased_ui={}", cookie.value());
            let origin = base();
            let unreserved = format!("/ui/api/reservations/{}", lab.ip(60));
            let write = [("Cookie", cookie_h.as_str()), ("X-CSRF-Token", csrf.as_str()), ("Origin", origin.as_str())];
            let (st, body) = http("DELETE", &unreserved, &write, "");
            assert_eq!(st, 404, "{body}");
            let (st, _) = http("DELETE", &unreserved, &write[..2], "");
            assert_eq!(st, 403, "a write without Origin");
            b.click("a[data-tab=overview]").await;
            b.click("#logout").await;
            b.wait_js(SECS, "return document.getElementById('key')").await;
            assert_eq!(b.path().await, "/ui/login");
            let (st, _) = http("GET", "/ui/api/session", &write[..1], "");
            assert_eq!(st, 401, "the old cookie still opens a session");
            let replay = format!(r#"{{"mac": "{mac}", "ip": "{}"}}"#, lab.ip(61));
            let mut with_type = write.to_vec();
            with_type.push(("Content-Type", "application/json"));
            let (st, body) = http("POST", "/ui/api/reservations", &with_type, &replay);
            assert_eq!(st, 401, "a replayed write: {body}");
            let (st, _) = http("DELETE", &unreserved, &write, "");
            assert_eq!(st, 401);
            let text = std::fs::read_to_string(&srv.cfg_path).unwrap();
            assert!(!text.contains(&lab.ip(61).to_string()), "the replay wrote: {text}");
            // The browser given its old cookie back is still sent to the login form.
            b.client.add_cookie(cookie.clone()).await.unwrap();
            b.client.goto(&format!("{}/ui/", base())).await.unwrap();
            b.wait_js(SECS, "return document.getElementById('key')").await;
            assert_eq!(b.path().await, "/ui/login");
            b.shot("09-logged-out").await;
            b.close().await;
        });
    });
}

/// 100,000 leases around the real clock: mostly bound, some ended, some declined, in
/// 198.18.1.0 onwards; every 25th client has a host name. Returns how many are bound.
fn fixture(store: &std::path::Path, now: u64) -> usize {
    let mut s = EmbeddedStore::open(store).unwrap();
    s.load().unwrap();
    let mut bound = 0;
    let base = u32::from(Ipv4Addr::new(198, 18, 1, 0));
    let leases: Vec<Lease> = (0..100_000u32)
        .map(|i| {
            let hw = vec![
                2,
                0xcc,
                (i >> 24) as u8,
                (i >> 16) as u8,
                (i >> 8) as u8,
                i as u8,
            ];
            let (state, expires) = match i % 50 {
                0 => (LeaseState::Expired, now - 3600),
                1 => (LeaseState::Released, now - 600),
                2 => (LeaseState::Declined, now + 3600),
                _ => (LeaseState::Bound, now + 3600 + u64::from(i % 3600)),
            };
            if state == LeaseState::Bound {
                bound += 1;
            }
            Lease {
                ip: Ipv4Addr::from(base + i),
                client_id: ClientId(std::iter::once(1).chain(hw.iter().copied()).collect()),
                hwaddr: HwAddr(hw),
                hostname: (i % 25 == 3).then(|| format!("host-{i}")),
                state,
                starts: Timestamp(now - 600),
                expires: Timestamp(expires),
                first_seen: Timestamp(now - 86_400),
                circuit_id: None,
                remote_id: None,
                subscriber_id: None,
            }
        })
        .collect();
    for chunk in leases.chunks(10_000) {
        s.commit(chunk).unwrap();
    }
    bound
}

#[test]
fn first_render_of_100000_leases() {
    if !gate!("chromium", "chromedriver") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::with_net("198.18.0.0/15");
    let mut cfg = Cfg::for_lab(&lab);
    cfg.lease_time = 7200;
    cfg.pools = vec![(lab.ip(10), lab.ip((1 << 17) - 6))];
    for n in 0..3u32 {
        cfg = cfg.reserve(&lab.mac(0x77, n as u8), lab.ip(100 + n));
    }
    cfg.extra = format!("[api]\nlisten = \"127.0.0.1:{API_PORT}\"\nkeys = [\"{KEY}\"]\n");
    let now = unix_now();
    let bound = fixture(&cfg.store_path, now);
    let srv = lab.start_server(&cfg.render());

    let (grid, timing) = in_netns(&lab.srv_ns, || {
        wait_api(100_000);
        runtime().block_on(async {
            let b = Browser::start(lab.dir(), "100k").await;
            b.client.goto(&format!("{}/ui/login", base())).await.unwrap();
            b.wait_js(SECS, "return document.getElementById('key')").await;
            // The first render: the login POST, its redirect, the page, its scripts, the
            // overview and the grid of 131,072 addresses, painted.
            log_in(&b, KEY).await;
            b.wait_js(Duration::from_secs(30), "return document.body.dataset.rendered === '1'")
                .await;
            let measure = "const m = performance.getEntriesByName('leased:first-render')[0]; \
                const n = performance.getEntriesByType('navigation')[0]; \
                const r = (p) => { const e = performance.getEntriesByType('resource').find(x => x.name.includes(p)); return e ? e.duration : null; }; \
                return { render: m.startTime, response_end: n.responseEnd, dom_loaded: n.domContentLoadedEventEnd, \
                  overview: r('/ui/api/overview'), grid: r('/ui/api/grid'), app_js: r('/ui/static/app.js') };";
            let first = b.js(measure).await;
            b.shot("10-overview-100k").await;
            // Reloaded (scripts revalidated, not downloaded): the same page again.
            b.client.goto(&format!("{}/ui/", base())).await.unwrap();
            b.wait_js(Duration::from_secs(30), "return document.body.dataset.rendered === '1'")
                .await;
            let again = b.js(measure).await;
            let counts = b
                .js("const c = (k) => { const e = document.getElementById('grid-count-' + k); return e ? Number(e.dataset.count) : 0; }; \
                    return { L: c('L'), D: c('D'), E: c('E'), R: c('R'), cells: Number(document.getElementById('grid').dataset.count), records: document.getElementById('total-records').textContent };")
                .await;
            let cookie = b.client.get_named_cookie("leased_ui").await.unwrap();
            let (st, body) = http("GET", "/ui/api/grid", &[("Cookie", &format!("leased_ui={}", cookie.value()))], "");
            assert_eq!(st, 200);
            b.close().await;
            (serde_json::from_str::<Value>(&body).unwrap(), (first, again, counts))
        })
    });
    let (first, again, counts) = timing;
    eprintln!("first render after login, 100,000 leases: {first}");
    eprintln!("rendered again: {again}");
    let ms = first["render"].as_f64().unwrap();
    assert!(ms < 1000.0, "first render took {ms:.0} ms: {first}");
    assert!(again["render"].as_f64().unwrap() < 1000.0, "{again}");
    assert_eq!(counts["cells"], 1 << 17, "{counts}");
    assert_eq!(counts["L"], bound as u64, "{counts}");
    assert_eq!(counts["D"], 2000, "{counts}");
    assert_eq!(counts["E"], 4000, "{counts}");
    assert_eq!(counts["R"], 3, "{counts}");
    assert_eq!(counts["records"], "100,000");

    // The grid is `leased stats --grid`, cell for cell (finer kinds folded into its letters).
    let cells: String = grid["cells"]
        .as_str()
        .unwrap()
        .chars()
        .map(leased_api::ui::grid::cli_glyph)
        .collect();
    let o = support::proc::run_env(
        None,
        &argv![
            leased_bin(),
            "stats",
            "-c",
            srv.cfg_path.display(),
            "--grid",
            "--from",
            "store",
            "--now",
            unix_now()
        ],
        Duration::from_secs(120),
        &[
            ("COLUMNS", "200".to_string()),
            ("NO_COLOR", "1".to_string()),
        ],
    );
    assert!(o.ok(), "{}", o.all());
    let mut cli = String::new();
    for line in o.stdout.lines().skip(1) {
        if line.trim_start().starts_with('L') && line.contains("leased") {
            break; // the legend
        }
        let Some(row) = line.get(16..) else { continue };
        // Rows are trimmed at the end: pad to the row length with "outside".
        cli.push_str(&format!("{row:<128}"));
    }
    assert_eq!(cli.len(), cells.len(), "rows of the CLI grid");
    let first_diff = cli.chars().zip(cells.chars()).position(|(a, b)| a != b);
    assert_eq!(
        first_diff, None,
        "the dashboard and leased stats --grid disagree"
    );
}
