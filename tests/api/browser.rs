//! The live page in a real browser: headless Chromium driven over WebDriver (chromedriver),
//! against the page that `spawn_app()` serves.
//!
//! Chromium and chromedriver come from Debian (`apt-get install -y chromium chromium-driver`;
//! `./scripts/test.sh` installs them). Without them these tests fail, saying so: a page test
//! that skips itself is a page that nobody tests. Screenshots land in `target/browser/`.
//! The page exposes each panel's state as `data-*` attributes; the tests read those, and the
//! server's own metrics, under deadlines — never after a sleep.

use std::{
    env,
    panic::AssertUnwindSafe,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, key::Key};
use futures_util::FutureExt;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::helpers::{TestApp, spawn_app, spawn_app_at, spawn_app_with, wait_until};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";
/// The page's transports, as its panels name them.
const TRANSPORTS: [&str; 3] = ["text", "sse", "ws"];
/// Time allowed for anything the page should show soon (generous: CI machines are slow and
/// the other tests of this binary run at the same time).
const SOON: Duration = Duration::from_secs(15);

/// One browser at a time: each is a few processes, and the machine has two cores.
static ONE_BROWSER: Mutex<()> = Mutex::const_new(());

/// A headless Chromium with a fresh profile, driven by its own chromedriver.
struct Browser {
    client: Client,
    driver_url: String,
    session: String,
    http: reqwest::Client,
    /// The page's base URL (`http://127.0.0.1:port/`).
    base: String,
}

/// A request the page made for `/stream/sse`, as Chromium's network events show it.
#[derive(Debug, Clone, Default)]
struct SseRequest {
    id: String,
    url: String,
    /// The `Last-Event-ID` header as sent (known once the request reached a server).
    last_event_id: Option<String>,
    /// The response's status, if one came.
    status: Option<u64>,
    /// Why it failed without a response (`net::ERR_CONNECTION_REFUSED`), if it did.
    failed: Option<String>,
}

impl SseRequest {
    /// The requests for `/stream/sse` in `events` (see [`Browser::network_events`]), in the
    /// order the page made them.
    fn all_in(events: &[Value]) -> Vec<Self> {
        let mut requests: Vec<Self> = Vec::new();
        let id = |e: &Value| {
            e["params"]["requestId"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        for e in events {
            let params = &e["params"];
            if e["method"] == "Network.requestWillBeSent"
                && params["type"] == "EventSource"
                && !requests.iter().any(|r| r.id == id(e))
            {
                requests.push(Self {
                    id: id(e),
                    url: params["request"]["url"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    ..Self::default()
                });
            }
        }
        for e in events {
            let Some(r) = requests.iter_mut().find(|r| r.id == id(e)) else {
                continue;
            };
            let params = &e["params"];
            match e["method"].as_str().unwrap_or_default() {
                // The headers as sent: Blink adds `Last-Event-ID` below the page's view.
                "Network.requestWillBeSentExtraInfo" => {
                    r.last_event_id = params["headers"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .find(|(k, _)| k.eq_ignore_ascii_case("last-event-id"))
                        .and_then(|(_, v)| v.as_str().map(str::to_owned));
                }
                "Network.responseReceived" => r.status = params["response"]["status"].as_u64(),
                "Network.loadingFailed" => {
                    r.failed = params["errorText"].as_str().map(str::to_owned);
                }
                _ => {}
            }
        }
        requests
    }
}

/// What one panel of the page shows, read in one go.
#[derive(Debug, Clone)]
struct Panel {
    state: String,
    count: u64,
    last: Option<u64>,
    in_order: bool,
    first_ms: Option<u64>,
    /// `data-index` of each chunk in the DOM, oldest first.
    indexes: Vec<u64>,
    /// Text of each chunk in the DOM.
    texts: Vec<String>,
    error: String,
    received: String,
    rate: String,
    elapsed: String,
}

impl Panel {
    fn from_json(v: &Value) -> Self {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let n = |k: &str| v[k].as_str().and_then(|s| s.parse().ok());
        Self {
            state: s("state"),
            count: n("count").unwrap_or(0),
            last: n("last"),
            in_order: v["inOrder"].as_str() == Some("true"),
            first_ms: n("firstMs"),
            indexes: v["indexes"]
                .as_array()
                .map(|a| a.iter().filter_map(|i| i.as_str()?.parse().ok()).collect())
                .unwrap_or_default(),
            texts: v["texts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| Some(t.as_str()?.to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            error: s("error"),
            received: s("received"),
            rate: s("rate"),
            elapsed: s("elapsed"),
        }
    }

    /// The elapsed figure in seconds (`"2.3 s"`).
    fn elapsed_secs(&self) -> f64 {
        self.elapsed
            .trim_end_matches(" s")
            .parse()
            .unwrap_or_else(|_| panic!("elapsed is not a duration: {self:?}"))
    }
}

/// Where screenshots go: `target/browser/` (or under `CARGO_TARGET_DIR`).
fn screenshot_dir() -> PathBuf {
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("browser")
}

/// A port nobody listens on right now, for chromedriver.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A chromedriver process, killed when dropped (also when a test panics).
struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts chromedriver, failing the test with the fix when it or Chromium is missing.
fn start_chromedriver(port: u16) -> Driver {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the browser tests need Debian's Chromium and ChromeDriver \
         (`apt-get update && apt-get install -y chromium chromium-driver`; ./scripts/test.sh \
         installs them)"
    );
    let child = std::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start `{CHROMEDRIVER}` ({e}): the browser tests need Debian's Chromium \
                 and ChromeDriver (`apt-get update && apt-get install -y chromium \
                 chromium-driver`; ./scripts/test.sh installs them)"
            )
        });
    Driver(child)
}

/// Runs `test` against a fresh headless Chromium on `app`'s page. Whatever happens, the
/// browser is closed, and a failing test leaves a screenshot `target/browser/{name}-failed.png`.
async fn with_browser(app: &TestApp, name: &str, test: impl AsyncFnOnce(&Browser)) {
    with_browser_at(&app.url("/"), name, false, test).await;
}

/// [`with_browser`] on the page at `base`, which may outlive any one server (a restart on
/// the same address). With `network_log`, Chromium also records its network events, which
/// [`Browser::network_events`] reads back.
async fn with_browser_at(
    base: &str,
    name: &str,
    network_log: bool,
    test: impl AsyncFnOnce(&Browser),
) {
    let _one = ONE_BROWSER.lock().await;
    let port = free_port();
    let driver = start_chromedriver(port);
    let driver_url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_until(SOON, "chromedriver to accept sessions", || {
        let status = http.get(format!("{driver_url}/status")).send();
        async move {
            match status.await {
                Ok(resp) => resp
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            }
        }
    })
    .await;

    let profile = tempfile::tempdir().expect("a temporary Chromium profile");
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-quic",
        "--no-first-run",
        "--disable-sync",
        "--window-size=1280,900",
        &format!("--user-data-dir={}", profile.path().display()),
    ];
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        // Every console message and failed load, read back through chromedriver; and, when
        // asked for, the DevTools network events (the requests the page's APIs make).
        "goog:loggingPrefs": if network_log {
            json!({ "browser": "ALL", "performance": "ALL" })
        } else {
            json!({ "browser": "ALL" })
        },
    });
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(
            capabilities
                .as_object()
                .expect("capabilities object")
                .clone(),
        )
        .connect(&driver_url)
        .await
        .expect("a Chromium session from chromedriver");
    let session = client
        .session_id()
        .await
        .expect("session id")
        .expect("a session");
    let browser = Browser {
        client: client.clone(),
        driver_url,
        session,
        http,
        base: base.to_owned(),
    };

    let outcome = AssertUnwindSafe(test(&browser)).catch_unwind().await;
    if outcome.is_err() {
        browser.screenshot(&format!("{name}-failed")).await;
    }
    let _ = client.close().await;
    drop(driver);
    drop(profile);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

impl Browser {
    /// Opens the live page and checks it loaded without a console error.
    async fn open_page(&self) {
        self.client.goto(&self.base).await.expect("open the page");
        self.client
            .wait()
            .at_most(SOON)
            .for_element(Locator::Css("#panel-text .state"))
            .await
            .expect("the page's script filled in the panels");
        self.assert_no_console_errors("loading the page").await;
    }

    /// Runs a script in the page and returns its value.
    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Reads one panel.
    async fn panel(&self, transport: &str) -> Panel {
        let v = self
            .js(&format!(
                r#"const p = document.getElementById("panel-{transport}");
                const q = (s) => p.querySelector(s).textContent;
                const items = [...p.querySelectorAll(".chunks li")];
                return {{
                    state: p.dataset.state, count: p.dataset.count, last: p.dataset.last,
                    inOrder: p.dataset.inOrder, firstMs: p.dataset.firstMs,
                    indexes: items.map((li) => li.dataset.index),
                    texts: items.map((li) => li.textContent),
                    error: q(".error"), received: q(".received"), rate: q(".rate"),
                    elapsed: q(".elapsed"),
                }};"#
            ))
            .await;
        Panel::from_json(&v)
    }

    /// Polls a panel until `ready` holds; fails with the last reading after `deadline`.
    async fn wait_panel(
        &self,
        transport: &str,
        what: &str,
        deadline: Duration,
        ready: impl Fn(&Panel) -> bool,
    ) -> Panel {
        let start = Instant::now();
        loop {
            let panel = self.panel(transport).await;
            if ready(&panel) {
                return panel;
            }
            assert!(
                start.elapsed() < deadline,
                "{transport}: timed out after {deadline:?} waiting for {what}; the panel shows {panel:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Types `value` into the input `id`, as a user would.
    async fn fill(&self, id: &str, value: &str) {
        let input = self.find(&format!("#{id}")).await;
        input.clear().await.expect("clear the input");
        input.send_keys(value).await.expect("type into the input");
    }

    /// Chooses a transport (`text`, `sse`, `ws` or `race`) and the parameters.
    async fn choose(&self, mode: &str, count: u64, interval_ms: u64) {
        self.click(&format!("input[name=transport][value={mode}]"))
            .await;
        self.fill("count", &count.to_string()).await;
        self.fill("interval_ms", &interval_ms.to_string()).await;
    }

    async fn is_disabled(&self, id: &str) -> bool {
        self.js(&format!(
            r#"return document.getElementById("{id}").disabled;"#
        ))
        .await
        .as_bool()
        .expect("a boolean")
    }

    /// Saves a PNG of the viewport as `target/browser/{name}.png`.
    async fn screenshot(&self, name: &str) {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create the screenshot folder");
        match self.client.screenshot().await {
            Ok(png) => {
                std::fs::write(dir.join(format!("{name}.png")), png).expect("save screenshot")
            }
            Err(e) => eprintln!("no screenshot {name}: {e}"),
        }
    }

    /// The entries of chromedriver's log `kind` (`browser`, `performance`) since the last
    /// read of that log.
    async fn log(&self, kind: &str) -> Vec<Value> {
        let logs: Value = self
            .http
            .post(format!(
                "{}/session/{}/se/log",
                self.driver_url, self.session
            ))
            .json(&json!({ "type": kind }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("chromedriver answers for the {kind} log: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("the {kind} log as JSON: {e}"));
        logs["value"]
            .as_array()
            .unwrap_or_else(|| panic!("a list of {kind} log entries: {logs}"))
            .clone()
    }

    /// Console messages and failed loads logged at SEVERE since the last call.
    async fn console_errors(&self) -> Vec<String> {
        self.log("browser")
            .await
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The DevTools network events (`{"method": …, "params": …}`) since the last call, oldest
    /// first (needs `network_log` in [`with_browser_at`]).
    async fn network_events(&self) -> Vec<Value> {
        self.log("performance")
            .await
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
            .map(|m| m["message"].clone())
            .filter(|m| {
                m["method"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("Network."))
            })
            .collect()
    }

    /// Waits until the page has painted a frame, so that the `data-*` figures include
    /// every event dispatched before this call (the panels render once a frame).
    async fn next_frame(&self) {
        self.client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                requestAnimationFrame(() => requestAnimationFrame(() => done(null)));",
                vec![],
            )
            .await
            .expect("an animation frame");
    }

    async fn assert_no_console_errors(&self, during: &str) {
        let errors = self.console_errors().await;
        assert!(
            errors.is_empty(),
            "console errors while {during}: {errors:#?}"
        );
    }
}

/// `chunkstream_chunks_sent_total{transport}`, 0 before the first stream.
async fn chunks_sent(app: &TestApp, transport: &str) -> f64 {
    series(app, "chunkstream_chunks_sent_total", transport).await
}

async fn open_streams(app: &TestApp, transport: &str) -> f64 {
    series(app, "chunkstream_open_streams", transport).await
}

async fn series(app: &TestApp, name: &str, transport: &str) -> f64 {
    let key = format!("{name}{{transport=\"{transport}\"}}");
    app.metrics().await.get(&key).copied().unwrap_or(0.0)
}

/// One transport end to end: chunks show up while the server is still producing them, all
/// arrive in order with live figures, and Stop ends the stream on the server too.
async fn streams_live_in_order_and_stops(transport: &str) {
    let app = spawn_app().await;
    with_browser(&app, transport, async |b| {
        b.open_page().await;
        let count = 12;
        let interval_ms = 200;
        b.choose(transport, count, interval_ms).await;
        let sent_before = chunks_sent(&app, transport).await;
        // Start from the keyboard: Enter in a field submits the form.
        b.find("#interval_ms")
            .await
            .send_keys(&Key::Enter.to_string())
            .await
            .expect("press Enter");

        let early = b
            .wait_panel(transport, "the first chunks", SOON, |p| p.count >= 2)
            .await;
        let sent = chunks_sent(&app, transport).await - sent_before;
        assert!(
            sent < count as f64,
            "the first chunks must be on the page before the server sends the last \
             (sent {sent} of {count}); the panel: {early:?}"
        );
        assert!(
            matches!(early.state.as_str(), "streaming" | "done"),
            "{early:?}"
        );
        assert_eq!(early.received, early.count.to_string(), "{early:?}");
        let first_ms = early.first_ms.expect("time to first chunk");
        assert!(first_ms < 5_000, "time to first chunk {first_ms} ms");
        assert_ne!(early.rate, "–", "chunks/s is shown: {early:?}");
        assert!(
            !b.is_disabled("stop").await,
            "Stop is enabled while streaming"
        );
        b.screenshot(&format!("{transport}-streaming")).await;

        let done = b
            .wait_panel(transport, "the end of the stream", SOON, |p| {
                p.state != "streaming" && p.state != "connecting"
            })
            .await;
        assert_eq!(done.state, "done", "{done:?}");
        assert_eq!(done.count, count, "{done:?}");
        assert_eq!(done.last, Some(count - 1), "{done:?}");
        assert!(done.in_order, "{done:?}");
        assert_eq!(done.indexes, (0..count).collect::<Vec<_>>(), "{done:?}");
        let texts: Vec<String> = (0..count).map(|i| format!("Data Chunk {i}")).collect();
        assert_eq!(done.texts, texts);
        assert!(done.error.is_empty(), "{done:?}");
        // 11 intervals of 200 ms: the elapsed figure followed the stream.
        assert!(
            done.elapsed_secs() >= 2.0 && done.elapsed_secs() > early.elapsed_secs(),
            "elapsed: {early:?} then {done:?}"
        );
        assert!(b.is_disabled("stop").await, "Stop is disabled once done");
        b.screenshot(&format!("{transport}-done")).await;

        // Stop: a long stream, stopped after a few chunks, ends on the server.
        b.choose(transport, 100_000, 50).await;
        b.click("#start").await;
        b.wait_panel(transport, "a few chunks", SOON, |p| p.count >= 3)
            .await;
        b.click("#stop").await;
        let stopped = b
            .wait_panel(transport, "the stopped state", SOON, |p| {
                p.state == "stopped"
            })
            .await;
        wait_until(SOON, "the server to close the stopped stream", || {
            open_streams(&app, transport).map(|n| n == 0.0)
        })
        .await;
        let after = b.panel(transport).await;
        assert_eq!(after.state, "stopped");
        assert!(after.count < 100_000, "{after:?}");
        assert!(
            after.count <= stopped.count + 1,
            "{stopped:?} then {after:?}"
        );
        assert!(b.is_disabled("stop").await, "Stop is disabled once stopped");
        b.assert_no_console_errors("streaming and stopping").await;
    })
    .await;
}

#[tokio::test]
async fn text_streams_live_in_order_and_stops_in_the_browser() {
    streams_live_in_order_and_stops("text").await;
}

#[tokio::test]
async fn sse_streams_live_in_order_and_stops_in_the_browser() {
    streams_live_in_order_and_stops("sse").await;
}

#[tokio::test]
async fn websocket_streams_live_in_order_and_stops_in_the_browser() {
    streams_live_in_order_and_stops("ws").await;
}

#[tokio::test]
async fn websocket_pause_holds_the_stream_and_resume_finishes_it_in_the_browser() {
    let app = spawn_app().await;
    with_browser(&app, "ws-pause", async |b| {
        b.open_page().await;
        let count = 30;
        b.choose("ws", count, 100).await;
        b.click("#start").await;
        b.wait_panel("ws", "a few chunks", SOON, |p| p.count >= 3)
            .await;
        assert!(
            b.is_disabled("resume").await,
            "Resume is disabled while streaming"
        );
        b.click("#pause").await;
        let paused = b
            .wait_panel("ws", "the paused state", SOON, |p| p.state == "paused")
            .await;
        assert!(
            b.is_disabled("pause").await,
            "Pause is disabled while paused"
        );
        assert!(
            !b.is_disabled("resume").await,
            "Resume is enabled while paused"
        );
        // While paused nothing moves, on the page or on the server, for ten intervals (one
        // chunk may have been in flight when the pause was sent). Observing an absence
        // takes time: this window is the measurement, not a synchronisation.
        let sent_paused = chunks_sent(&app, "ws").await;
        let window = Instant::now();
        while window.elapsed() < Duration::from_millis(1_000) {
            let p = b.panel("ws").await;
            assert!(
                p.count <= paused.count + 1,
                "chunks kept coming while paused: {p:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sent_later = chunks_sent(&app, "ws").await;
        assert!(
            sent_later <= sent_paused + 1.0,
            "the server kept sending while paused: {sent_paused} then {sent_later}"
        );
        assert_eq!(
            open_streams(&app, "ws").await,
            1.0,
            "a paused stream stays open"
        );
        b.screenshot("ws-paused").await;

        b.click("#resume").await;
        b.wait_panel("ws", "streaming again", SOON, |p| p.state != "paused")
            .await;
        let done = b
            .wait_panel("ws", "the end of the stream", SOON, |p| {
                p.state != "streaming" && p.state != "paused"
            })
            .await;
        assert_eq!(done.state, "done", "{done:?}");
        assert_eq!(done.count, count, "{done:?}");
        assert!(done.in_order, "{done:?}");
        assert_eq!(done.indexes, (0..count).collect::<Vec<_>>());
        b.assert_no_console_errors("pausing and resuming").await;
    })
    .await;
}

#[tokio::test]
async fn race_runs_all_three_side_by_side_in_the_browser() {
    let app = spawn_app().await;
    with_browser(&app, "race", async |b| {
        // Tall enough for the three panels in one screenshot (the README's picture).
        b.client
            .set_window_size(1280, 1120)
            .await
            .expect("resize the window");
        b.open_page().await;
        let count = 40;
        b.choose("race", count, 100).await;
        b.click("#start").await;
        let visible = b
            .js(r#"return [...document.querySelectorAll(".panel")].filter((p) => !p.hidden).length;"#)
            .await;
        assert_eq!(visible, json!(3), "race shows the three panels");
        for transport in TRANSPORTS {
            b.wait_panel(transport, "the race under way", SOON, |p| p.count >= 12)
                .await;
        }
        b.screenshot("race").await;
        for transport in TRANSPORTS {
            let done = b
                .wait_panel(transport, "the end of the race", SOON, |p| {
                    !matches!(p.state.as_str(), "connecting" | "streaming")
                })
                .await;
            assert_eq!(done.state, "done", "{done:?}");
            assert_eq!(done.count, count, "{done:?}");
            assert!(done.in_order, "{done:?}");
            assert_eq!(done.last, Some(count - 1), "{done:?}");
            // The DOM stays bounded: the last 50 chunks at most.
            assert!(done.indexes.len() <= 50, "{done:?}");
        }
        b.screenshot("race-done").await;

        // A phone-sized window: everything still fits its width.
        b.client
            .set_window_size(390, 844)
            .await
            .expect("resize the window");
        let overflow = b
            .js("return document.documentElement.scrollWidth - window.innerWidth;")
            .await;
        assert!(
            overflow.as_i64().is_some_and(|px| px <= 0),
            "the page is wider than a narrow screen by {overflow}px"
        );
        b.screenshot("race-narrow").await;
        b.assert_no_console_errors("racing").await;
    })
    .await;
}

#[tokio::test]
async fn a_large_fast_stream_keeps_the_dom_bounded_in_the_browser() {
    let app = spawn_app().await;
    with_browser(&app, "large", async |b| {
        b.open_page().await;
        let count = 100_000;
        b.choose("race", count, 0).await;
        b.click("#start").await;
        for transport in TRANSPORTS {
            let done = b
                .wait_panel(transport, "the end of a large stream", SOON * 4, |p| {
                    !matches!(p.state.as_str(), "connecting" | "streaming")
                })
                .await;
            assert_eq!(done.state, "done", "{done:?}");
            assert_eq!(done.count, count, "{done:?}");
            assert!(done.in_order, "{done:?}");
            assert_eq!(
                done.indexes,
                (count - 50..count).collect::<Vec<_>>(),
                "only the last 50 chunks stay in the DOM"
            );
            assert_eq!(done.received, "100,000");
        }
        b.screenshot("large").await;
        b.assert_no_console_errors("a large stream").await;
    })
    .await;
}

#[tokio::test]
async fn a_bad_count_shows_the_servers_message_in_the_browser() {
    let app = spawn_app().await;
    with_browser(&app, "bad-count", async |b| {
        b.open_page().await;
        for transport in TRANSPORTS {
            b.choose(transport, 100_000_001, 0).await;
            b.click("#start").await;
            let panel = b
                .wait_panel(transport, "the error", SOON, |p| p.state == "error")
                .await;
            assert!(
                panel.error.contains("400") && panel.error.contains("`count`"),
                "the server's message is shown: {panel:?}"
            );
            assert_eq!(panel.count, 0);
        }
        b.screenshot("bad-count").await;
        // The browser itself reports the failed load; nothing else may go wrong.
        let errors = b.console_errors().await;
        eprintln!("console errors after the bad requests (expected): {errors:#?}");
        let unexpected: Vec<_> = errors
            .iter()
            .filter(|e| !(e.contains("/stream") && e.contains("400")))
            .collect();
        assert!(unexpected.is_empty(), "console errors: {unexpected:#?}");
    })
    .await;
}

#[tokio::test]
async fn docs_link_renders_the_operations_in_the_browser() {
    let app = spawn_app().await;
    with_browser(&app, "docs", async |b| {
        b.open_page().await;
        // The links are relative, so they work under any prefix a proxy adds.
        let hrefs = b
            .js(r#"return [...document.querySelectorAll("nav a")].map((a) => a.getAttribute("href"));"#)
            .await;
        assert_eq!(hrefs, json!(["docs", "openapi.json"]));
        b.click(r#"nav a[href="docs"]"#).await;
        let start = Instant::now();
        loop {
            let paths = b
                .js(r#"return [...document.querySelectorAll(".opblock-summary-path")].map((e) => e.textContent.trim());"#)
                .await;
            let paths: Vec<&str> = paths
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let wanted = ["/stream", "/stream/sse", "/stream/ws"];
            if wanted.iter().all(|w| paths.contains(w)) {
                break;
            }
            assert!(
                start.elapsed() < SOON,
                "Swagger UI must show the operations {wanted:?}; it shows {paths:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        b.screenshot("docs").await;
        b.client.back().await.expect("back to the page");
        b.click(r#"nav a[href="openapi.json"]"#).await;
        let body = b.js(r#"return document.querySelector("pre").textContent;"#).await;
        let spec: Value = serde_json::from_str(body.as_str().expect("text"))
            .expect("the link opens the OpenAPI document");
        assert!(spec["paths"]["/stream"].is_object(), "{spec}");
    })
    .await;
}

/// Issue 3's promise, kept by Chromium's own `EventSource`: a server restart in the middle of
/// a stream (the server gone for a while, then a successor on the same address) loses no
/// chunk and repeats none, the browser resuming by itself with `Last-Event-ID`; and after the
/// `end` event nothing reconnects.
#[tokio::test]
async fn sse_resumes_across_a_server_restart_in_the_browser() {
    /// The `retry:` the servers announce: the browser reconnects this soon after a cut.
    const RETRY_MS: u64 = 200;
    let count: u64 = 40;
    let first = spawn_app_with(|c| c.sse_retry_ms = RETRY_MS).await;
    let addr = first.addr;
    let base = first.url("/");
    let url = first.url(&format!("/stream/sse?count={count}&interval_ms=100"));
    with_browser_at(&base, "sse-restart", true, async move |b| {
        b.open_page().await;
        b.choose("sse", count, 100).await;
        b.click("#start").await;
        let early = b
            .wait_panel("sse", "chunks from the first server", SOON, |p| {
                p.count >= 8
            })
            .await;
        assert_eq!(early.state, "streaming", "{early:?}");

        // The restart, part one: the first server goes, ending the body without `end`.
        first
            .shutdown()
            .await
            .expect("the first server stops cleanly");
        b.wait_panel("sse", "the EventSource to see the cut", SOON, |p| {
            p.state == "reconnecting"
        })
        .await;
        // Nobody listens now, so the page holds exactly what the first server sent.
        b.next_frame().await;
        let cut = b.panel("sse").await;
        let from_first = cut.count;
        assert!(
            (8..count).contains(&from_first),
            "the cut came mid-stream: {cut:?}"
        );
        assert_eq!(cut.state, "reconnecting", "{cut:?}");
        assert_eq!(cut.last, Some(from_first - 1), "{cut:?}");
        assert!(cut.in_order, "{cut:?}");
        assert!(cut.error.is_empty(), "a cut is not an error: {cut:?}");
        // The browser keeps trying while nobody listens, and the page keeps waiting.
        let mut events = b.network_events().await;
        let start = Instant::now();
        while !SseRequest::all_in(&events)
            .iter()
            .any(|r| r.failed.is_some())
        {
            assert!(
                start.elapsed() < SOON,
                "the browser must try to reconnect: {:#?}",
                SseRequest::all_in(&events)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            events.extend(b.network_events().await);
        }
        let waiting = b.panel("sse").await;
        assert_eq!(waiting.state, "reconnecting", "{waiting:?}");
        assert_eq!(waiting.count, from_first, "{waiting:?}");
        assert!(waiting.error.is_empty(), "{waiting:?}");

        // Part two: a successor on the same address. The browser finds it by itself.
        let successor = spawn_app_at(addr, |c| c.sse_retry_ms = RETRY_MS).await;
        let done = b
            .wait_panel("sse", "the end of the resumed stream", SOON, |p| {
                !matches!(
                    p.state.as_str(),
                    "connecting" | "streaming" | "reconnecting"
                )
            })
            .await;
        b.screenshot("sse-restart").await;
        assert_eq!(done.state, "done", "{done:?}");
        assert_eq!(done.count, count, "{done:?}");
        assert_eq!(done.last, Some(count - 1), "{done:?}");
        assert!(done.in_order, "{done:?}");
        assert_eq!(done.indexes, (0..count).collect::<Vec<_>>(), "{done:?}");
        let texts: Vec<String> = (0..count).map(|i| format!("Data Chunk {i}")).collect();
        assert_eq!(done.texts, texts);
        assert!(done.error.is_empty(), "{done:?}");

        // The successor served the rest and only the rest, in one stream that completed.
        let completed = [("transport", "sse"), ("outcome", "completed")];
        wait_until(SOON, "the successor to close the stream", || {
            open_streams(&successor, "sse").map(|n| n == 0.0)
        })
        .await;
        let served = chunks_sent(&successor, "sse").await;
        assert_eq!(
            served,
            (count - from_first) as f64,
            "the successor sends what the first did not ({from_first} of {count})"
        );
        assert_eq!(
            successor
                .metric("chunkstream_streams_total", &completed)
                .await,
            1.0
        );

        // In the browser's own words: one request to the first server, refused attempts while
        // nobody listened, then one resumption from the last id received.
        events.extend(b.network_events().await);
        let requests = SseRequest::all_in(&events);
        let (initial, rest) = requests.split_first().expect("the first request");
        let (resumed, refused) = rest.split_last().expect("a resumption");
        assert!(
            initial.url == url && initial.status == Some(200) && initial.last_event_id.is_none(),
            "{requests:#?}"
        );
        assert!(!refused.is_empty(), "{requests:#?}");
        for r in refused {
            assert!(
                r.url == url
                    && r.status.is_none()
                    && r.failed.as_deref() == Some("net::ERR_CONNECTION_REFUSED"),
                "while no server listened, only refused attempts: {requests:#?}"
            );
        }
        let last_id = (from_first - 1).to_string();
        assert!(
            resumed.url == url
                && resumed.status == Some(200)
                && resumed.last_event_id.as_deref() == Some(last_id.as_str()),
            "the browser resumes after the last chunk it received ({last_id}): {requests:#?}"
        );

        // After `end`, the page closed the EventSource: nothing reconnects. Observing an
        // absence takes time: five reconnection delays, as the measurement itself.
        let window = Instant::now();
        while window.elapsed() < Duration::from_millis(5 * RETRY_MS) {
            let p = b.panel("sse").await;
            assert!(
                p.state == "done" && p.count == count,
                "after the end: {p:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let later = b.network_events().await;
        let again = SseRequest::all_in(&later);
        assert!(again.is_empty(), "requests after the end: {again:#?}");
        assert_eq!(open_streams(&successor, "sse").await, 0.0);
        assert_eq!(chunks_sent(&successor, "sse").await, served);
        let outcomes = successor.metrics().await;
        let streams: f64 = outcomes
            .iter()
            .filter(|(k, _)| {
                k.starts_with("chunkstream_streams_total{") && k.contains(r#"transport="sse""#)
            })
            .map(|(_, v)| v)
            .sum();
        assert_eq!(streams, 1.0, "one stream on the successor: {outcomes:#?}");

        // The console: each refused attempt logs its failed load, and nothing else is logged.
        let errors = b.console_errors().await;
        let refused_load = format!("{url} - Failed to load resource: net::ERR_CONNECTION_REFUSED");
        assert_eq!(
            errors,
            vec![refused_load; refused.len()],
            "console errors: only the refused reconnection attempts"
        );
        eprintln!(
            "sse restart: {from_first} chunks from the first server, {} refused attempts, \
             {served} from the successor",
            refused.len()
        );
    })
    .await;
}
