//! A real headless Chromium for the dashboard's tests, driven over WebDriver (chromedriver,
//! with `fantoccini`), from inside the server's network namespace.
//!
//! Why a thread that enters the namespace: the server (and its API on 127.0.0.1) lives in the
//! lab's server namespace. [`in_netns`] runs a closure on a thread that has joined that
//! namespace (`setns` changes only the calling thread), so every socket it opens — to
//! chromedriver, to the API — and every process it starts — chromedriver and the browser
//! under it — is inside the lab: no traffic on the host's network, and the lab's teardown
//! stops whatever is left there.
//!
//! Chromium is started with the flags that keep it quiet on a closed network (no background
//! networking, component updates, sync, QUIC, first-run) and a fresh profile directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::argv;
use crate::support::proc::{Proc, find_bin};

/// Where the screenshots go: `target/ui-artifacts/`.
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("ui-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// The browser binary: Debian's real one, else the `chromium` wrapper.
pub fn chromium() -> String {
    let real = Path::new("/usr/lib/chromium/chromium");
    if real.is_file() {
        return real.display().to_string();
    }
    find_bin("chromium")
        .expect("chromium not installed")
        .display()
        .to_string()
}

/// Runs `f` on a thread inside network namespace `ns` and returns its result (a panic in it
/// is the caller's panic).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        });
        match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// A current-thread tokio runtime (on the namespaced thread).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// One browser: chromedriver, its Chromium, a WebDriver session.
pub struct Browser {
    pub client: Client,
    pub shots: PathBuf,
    pub prefix: String,
    driver: Proc,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver (in the calling thread's namespace) and a headless Chromium.
    /// Screenshots are named `<prefix>-<name>.png` in [`artifacts`].
    pub async fn start(log_dir: &Path, prefix: &str) -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let driver_bin = find_bin("chromedriver").expect("chromedriver not installed");
        let mut driver = Proc::spawn(
            "chromedriver",
            None,
            &argv![driver_bin.display(), format!("--port={port}")],
            &log_dir.join(format!("chromedriver-{prefix}.log")),
            &[],
        );
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                driver.alive() && t0.elapsed() < Duration::from_secs(15),
                "chromedriver did not listen:\n{}",
                driver.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::Builder::new()
            .prefix("leased-ui-chromium.")
            .tempdir()
            .expect("profile dir");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({
            "goog:chromeOptions": { "binary": chromium(), "args": args },
        });
        let caps = caps.as_object().cloned().expect("capabilities");
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no WebDriver session: {e}\nchromedriver:\n{}",
                    driver.output()
                )
            });
        Browser {
            client,
            shots: artifacts(),
            prefix: prefix.to_string(),
            driver,
            _profile: profile,
        }
    }

    /// Saves a screenshot of the page as `<prefix>-<name>.png`; returns its path.
    pub async fn shot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = self.shots.join(format!("{}-{name}.png", self.prefix));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Runs `script` in the page; returns its value.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Runs an async `script` (its last argument is the callback); returns what it passed.
    pub async fn js_async(&self, script: &str) -> Value {
        self.client
            .execute_async(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits (bounded) until `script` returns something truthy; returns it.
    pub async fn wait_js(&self, timeout: Duration, script: &str) -> Value {
        let t0 = Instant::now();
        loop {
            let v = self.js(script).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if t0.elapsed() > timeout {
                let shot = self.shot("timeout").await;
                panic!(
                    "waited {timeout:?} for `{script}` (screenshot {})",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the first element matching `css` ("" when there is none).
    pub async fn text(&self, css: &str) -> String {
        let v = self
            .js(&format!(
                "const e = document.querySelector({}); return e ? e.textContent : '';",
                json!(css)
            ))
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// Waits (bounded) until an element matching `css` exists and its text contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let t = self.text(css).await;
            if t.contains(needle) {
                return t;
            }
            if t0.elapsed() > timeout {
                let shot = self.shot("timeout").await;
                panic!(
                    "waited {timeout:?} for {css} to contain {needle:?}; it reads {t:?} (screenshot {})",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Replaces the value of the input matching `css` by typing `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        e.clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        e.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Moves the real mouse pointer to (`x`, `y`) pixels from the top-left corner of the
    /// content box of the element matching `css` (scrolled into view first).
    pub async fn hover(&self, css: &str, x: f64, y: f64) {
        let at = self
            .js(&format!(
                "const e = document.querySelector({}); e.scrollIntoView({{block: 'center'}}); \
                 const r = e.getBoundingClientRect(); \
                 return [r.left + e.clientLeft + {x}, r.top + e.clientTop + {y}];",
                json!(css)
            ))
            .await;
        let (vx, vy) = (at[0].as_f64().expect("x"), at[1].as_f64().expect("y"));
        let mouse = MouseActions::new("mouse".into()).then(PointerAction::MoveTo {
            duration: Some(Duration::from_millis(50)),
            x: vx.floor(),
            y: vy.floor(),
        });
        self.client
            .perform_actions(mouse)
            .await
            .expect("pointer move");
    }

    /// The page's URL path.
    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("url")
            .path()
            .to_string()
    }

    /// Ends the session (the browser quits) and chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.close().await;
        self.driver.stop(Duration::from_secs(3));
    }
}
