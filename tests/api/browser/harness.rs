//! The browser harness: a headless Chromium driven over WebDriver by its own chromedriver,
//! and what the browser tests read from the page (panels, the chart, logs, network events).
//!
//! Chromium and chromedriver come from Debian (`apt-get install -y chromium chromium-driver`;
//! `./scripts/test.sh` installs them). Without them a browser test is skipped, saying why,
//! unless `CI` is set (as `./scripts/test.sh` sets it): then it fails, since a page test that
//! skips itself in CI is a page that nobody tests. Screenshots land in `target/browser/`.

use std::{
    env,
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::helpers::{TestApp, needs, wait_until};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";
/// Time allowed for anything the page should show soon (generous: CI machines are slow and
/// the other tests of this binary run at the same time).
pub const SOON: Duration = Duration::from_secs(15);

/// One browser at a time: each is a few processes, and the machine has two cores.
static ONE_BROWSER: Mutex<()> = Mutex::const_new(());

/// A headless Chromium with a fresh profile, driven by its own chromedriver.
pub struct Browser {
    pub client: Client,
    driver_url: String,
    session: String,
    http: reqwest::Client,
    /// The page's base URL (`http://127.0.0.1:port/`).
    base: String,
}

/// A request the page made for `/stream/sse`, as Chromium's network events show it.
#[derive(Debug, Clone, Default)]
pub struct SseRequest {
    id: String,
    pub url: String,
    /// The `Last-Event-ID` header as sent (known once the request reached a server).
    pub last_event_id: Option<String>,
    /// The response's status, if one came.
    pub status: Option<u64>,
    /// Why it failed without a response (`net::ERR_CONNECTION_REFUSED`), if it did.
    pub failed: Option<String>,
}

impl SseRequest {
    /// The requests for `/stream/sse` in `events` (see [`Browser::network_events`]), in the
    /// order the page made them.
    pub fn all_in(events: &[Value]) -> Vec<Self> {
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
pub struct Panel {
    pub state: String,
    pub count: u64,
    pub last: Option<u64>,
    pub in_order: bool,
    pub first_ms: Option<u64>,
    /// `data-index` of each chunk in the DOM, oldest first.
    pub indexes: Vec<u64>,
    /// Text of each chunk in the DOM.
    pub texts: Vec<String>,
    pub error: String,
    pub received: String,
    pub rate: String,
    pub elapsed: String,
    /// `data-protocol`: `h2`, `http/1.1`, `http/1.1 upgrade`; empty before any run.
    pub protocol: String,
    /// `data-encoding`: `identity`, `gzip`, `permessage-deflate`, `compressed`, or
    /// `not shown yet`; empty before any run.
    pub encoding: String,
    /// What the panel says of the bytes on the wire.
    pub wire: String,
    /// Why the stream waits for a connection, as the panel says it (empty when it does not).
    pub wait: String,
    /// `data-waiting`: the panel says why its stream waits.
    pub waiting: bool,
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
            protocol: s("protocol"),
            encoding: s("encoding"),
            wire: s("wire"),
            wait: s("wait"),
            waiting: v["waiting"].as_str() == Some("true"),
        }
    }

    /// The chunks/s figure as a number (`"965,123"`, `"10.1"`).
    pub fn rate_per_sec(&self) -> f64 {
        self.rate
            .replace(',', "")
            .parse()
            .unwrap_or_else(|_| panic!("chunks/s is not a number: {self:?}"))
    }

    /// The elapsed figure in seconds (`"2.3 s"`).
    pub fn elapsed_secs(&self) -> f64 {
        self.elapsed
            .trim_end_matches(" s")
            .parse()
            .unwrap_or_else(|_| panic!("elapsed is not a duration: {self:?}"))
    }
}

/// The chart as the page drew it last (`window.chunkstreamChart.read()`), with what its
/// SVG and legend hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chart {
    /// `linear` or `log`.
    pub scale: String,
    /// One line per transport of the run, in the page's order.
    pub series: Vec<Line>,
    /// The text alternative (a polite live region).
    pub summary: String,
    /// When the page last drew the chart and last put it into words (`performance.now()`,
    /// in ms), if it did.
    pub drawn_at: Option<f64>,
    pub described_at: Option<f64>,
    /// Every run ended, and its last point is drawn and described.
    pub settled: bool,
    /// The legend's entries, in order.
    pub legend: Vec<String>,
}

/// One line of the chart.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    /// The transport (`text`, `sse`, `ws`) and its label.
    pub name: String,
    pub label: String,
    /// The colour the page gives the transport (`#rrggbb`).
    pub colour: String,
    /// The run's state when drawn.
    pub state: String,
    /// The run ended and its final point is on the line.
    pub done: bool,
    /// `(seconds since the start, chunks per second)` at each point, as drawn.
    pub points: Vec<(f64, f64)>,
    /// The counts the points are computed from: `(seconds since the start, chunks received)`,
    /// the run's start first.
    pub counts: Vec<(f64, f64)>,
    /// The vertices of the line's `<polyline>` in the SVG.
    pub vertices: usize,
    /// The polyline's computed stroke (`rgb(r, g, b)`).
    pub stroke: String,
}

impl Line {
    /// The rate at the newest point.
    pub fn last_rate(&self) -> f64 {
        self.points
            .last()
            .unwrap_or_else(|| panic!("a line without points: {self:?}"))
            .1
    }

    /// The highest rate on the line.
    pub fn peak(&self) -> f64 {
        self.points
            .iter()
            .map(|&(_, rate)| rate)
            .fold(0.0, f64::max)
    }
}

/// `target/`, or `CARGO_TARGET_DIR`.
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Where screenshots go: `target/browser/` (or under `CARGO_TARGET_DIR`).
pub fn screenshot_dir() -> PathBuf {
    target_dir().join("browser")
}

/// A loopback port nobody listens on right now (for chromedriver, a test's nginx).
pub fn free_port() -> u16 {
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

/// What to install when the browser is missing.
const INSTALL: &str = "the browser tests need Debian's Chromium and ChromeDriver \
    (`apt-get install -y chromium chromium-driver`, or ./scripts/test.sh)";

/// Whether Chromium and chromedriver are both here to be started.
fn browser_installed() -> bool {
    let on_path = |program: &str| {
        env::var_os("PATH")
            .is_some_and(|path| env::split_paths(&path).any(|dir| dir.join(program).is_file()))
    };
    Path::new(CHROMIUM).is_file() && on_path(CHROMEDRIVER)
}

/// Starts chromedriver, failing the test with the fix if it cannot.
fn start_chromedriver(port: u16) -> Driver {
    let child = std::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{CHROMEDRIVER}` ({e}): {INSTALL}"));
    Driver(child)
}

/// Runs `test` against a fresh headless Chromium on `app`'s page. Whatever happens, the
/// browser is closed, and a failing test leaves a screenshot `target/browser/{name}-failed.png`.
/// Without Chromium or chromedriver, `test` is skipped saying why, or, when `CI` is set, the
/// test fails (see `helpers::needs`).
pub async fn with_browser(app: &TestApp, name: &str, test: impl AsyncFnOnce(&Browser)) {
    // Every check of such a test is inside `test`: nothing to skip besides.
    let _ran = with_browser_at(&app.url("/"), name, Options::default(), test).await;
}

/// How [`with_browser_at`] starts Chromium, besides what every test needs.
#[derive(Debug, Default)]
pub struct Options {
    /// Chromium also records its network events, which [`Browser::network_events`] reads.
    pub network_log: bool,
    /// More command-line switches (`--ignore-certificate-errors-spki-list=…`).
    pub args: Vec<String>,
}

/// [`with_browser`] on the page at `base`, which may outlive any one server (a restart on
/// the same address) or be no `TestApp`'s at all (a proxy's), with `options`. Returns
/// whether the browser ran: a test that checks afterwards what the browser did must skip
/// those checks too when it did not.
#[must_use = "checks of what the browser did must be skipped when it did not run"]
pub async fn with_browser_at(
    base: &str,
    name: &str,
    options: Options,
    test: impl AsyncFnOnce(&Browser),
) -> bool {
    if !needs("Chromium with chromedriver", browser_installed()) {
        return false;
    }
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
    let user_data_dir = format!("--user-data-dir={}", profile.path().display());
    let mut args = vec![
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-quic",
        "--no-first-run",
        "--disable-sync",
        "--window-size=1280,900",
        &user_data_dir,
    ];
    args.extend(options.args.iter().map(String::as_str));
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        // Every console message and failed load, read back through chromedriver; and, when
        // asked for, the DevTools network events (the requests the page's APIs make).
        "goog:loggingPrefs": if options.network_log {
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
    true
}

impl Browser {
    /// Opens the live page and checks it loaded without a console error.
    pub async fn open_page(&self) {
        self.open_page_with("").await;
    }

    /// Opens the live page with `query` in its URL (`"?chart=off"`).
    pub async fn open_page_with(&self, query: &str) {
        let url = format!("{}{query}", self.base);
        self.client.goto(&url).await.expect("open the page");
        self.client
            .wait()
            .at_most(SOON)
            .for_element(Locator::Css("#panel-text .state"))
            .await
            .expect("the page's script filled in the panels");
        self.assert_no_console_errors("loading the page").await;
    }

    /// Opens `path`, relative to the page's base URL (`"docs"`), and waits for it to load.
    pub async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Opens the live page in a new tab, which becomes the one the other methods act on;
    /// returns its handle, for [`Browser::switch_to`].
    pub async fn open_tab(&self) -> fantoccini::wd::WindowHandle {
        let tab = self.client.new_window(true).await.expect("a new tab");
        self.switch_to(&tab.handle).await;
        self.open_page().await;
        tab.handle
    }

    /// Makes the tab `handle` the one the other methods act on.
    pub async fn switch_to(&self, handle: &fantoccini::wd::WindowHandle) {
        self.client
            .switch_to_window(handle.clone())
            .await
            .expect("switch tabs");
    }

    /// Runs a script in the page and returns its value.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Reads one panel.
    pub async fn panel(&self, transport: &str) -> Panel {
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
                    elapsed: q(".elapsed"), protocol: p.dataset.protocol, wait: q(".wait"),
                    encoding: p.dataset.encoding, wire: q(".wire"),
                    waiting: p.dataset.waiting,
                }};"#
            ))
            .await;
        Panel::from_json(&v)
    }

    /// Polls a panel until `ready` holds; fails with the last reading after `deadline`.
    pub async fn wait_panel(
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

    /// Waits (at most `deadline`) for `transport`'s stream to end, and checks that it ended
    /// done with exactly `0..count`, in order; returns the panel.
    pub async fn wait_done(&self, transport: &str, count: u64, deadline: Duration) -> Panel {
        let done = self
            .wait_panel(transport, "the end of the stream", deadline, |p| {
                !matches!(
                    p.state.as_str(),
                    "connecting" | "streaming" | "reconnecting"
                )
            })
            .await;
        assert_eq!(done.state, "done", "{done:?}");
        assert_eq!(done.count, count, "{done:?}");
        assert!(done.in_order, "{done:?}");
        assert_eq!(done.last, count.checked_sub(1), "{done:?}");
        done
    }

    /// [`Browser::wait_done`], and the panel shows every chunk, `0..count` each with its text
    /// (for a `count` the panel keeps whole, 50 at most), and no error.
    pub async fn wait_whole(&self, transport: &str, count: u64, deadline: Duration) -> Panel {
        let done = self.wait_done(transport, count, deadline).await;
        assert_eq!(done.indexes, (0..count).collect::<Vec<_>>(), "{done:?}");
        let texts: Vec<String> = (0..count).map(|i| format!("Data Chunk {i}")).collect();
        assert_eq!(done.texts, texts, "{done:?}");
        assert!(done.error.is_empty(), "{done:?}");
        done
    }

    /// Reads the chart: what it drew last, and what its SVG and legend hold.
    pub async fn chart(&self) -> Chart {
        let v = self
            .js(r##"const chart = window.chunkstreamChart.read();
            for (const line of chart.series) {
                const polyline = document.querySelector(
                    `#chart .line[data-transport="${line.name}"] polyline`);
                line.vertices = polyline ? polyline.points.numberOfItems : 0;
                line.stroke = polyline ? getComputedStyle(polyline).stroke : "";
            }
            chart.legend = [...document.querySelectorAll("#chart .legend li")]
                .map((li) => li.textContent.trim());
            return chart;"##)
            .await;
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("a chart ({e}): {v}"))
    }

    /// Polls the chart until `ready` holds; fails with the last reading after `deadline`.
    pub async fn wait_chart(
        &self,
        what: &str,
        deadline: Duration,
        ready: impl Fn(&Chart) -> bool,
    ) -> Chart {
        let start = Instant::now();
        loop {
            let chart = self.chart().await;
            if ready(&chart) {
                return chart;
            }
            assert!(
                start.elapsed() < deadline,
                "chart: timed out after {deadline:?} waiting for {what}; it shows {chart:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Emulates CSS media features, e.g. `[("prefers-color-scheme", "dark")]`, through
    /// chromedriver's bridge to the DevTools protocol; `[]` ends the emulation.
    pub async fn emulate_media(&self, features: &[(&str, &str)]) {
        let features: Vec<Value> = features
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
        let answer: Value = self
            .http
            .post(format!(
                "{}/session/{}/goog/cdp/execute",
                self.driver_url, self.session
            ))
            .json(&json!({
                "cmd": "Emulation.setEmulatedMedia",
                "params": { "features": features },
            }))
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("chromedriver's answer as JSON");
        assert!(answer["value"].is_object(), "media emulation: {answer}");
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Types `value` into the input `id`, as a user would.
    pub async fn fill(&self, id: &str, value: &str) {
        let input = self.find(&format!("#{id}")).await;
        input.clear().await.expect("clear the input");
        input.send_keys(value).await.expect("type into the input");
    }

    /// Chooses a transport (`text`, `sse`, `ws` or `race`) and the parameters.
    pub async fn choose(&self, mode: &str, count: u64, interval_ms: u64) {
        self.click(&format!("input[name=transport][value={mode}]"))
            .await;
        self.fill("count", &count.to_string()).await;
        self.fill("interval_ms", &interval_ms.to_string()).await;
    }

    pub async fn is_disabled(&self, id: &str) -> bool {
        self.js(&format!(
            r#"return document.getElementById("{id}").disabled;"#
        ))
        .await
        .as_bool()
        .expect("a boolean")
    }

    /// Saves a PNG of the viewport as `target/browser/{name}.png`.
    pub async fn screenshot(&self, name: &str) {
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
    pub async fn console_errors(&self) -> Vec<String> {
        self.log("browser")
            .await
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The DevTools network events (`{"method": …, "params": …}`) since the last call, oldest
    /// first (needs `network_log` in [`with_browser_at`]).
    pub async fn network_events(&self) -> Vec<Value> {
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
    pub async fn next_frame(&self) {
        self.client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                requestAnimationFrame(() => requestAnimationFrame(() => done(null)));",
                vec![],
            )
            .await
            .expect("an animation frame");
    }

    /// Runs axe-core (`axe`, its source) on the page as it is now and returns its violations,
    /// one line each: rule, impact, help and the elements it names.
    pub async fn axe_violations(&self, axe: &str) -> Vec<String> {
        // Loaded once per page: a second load would replace the first, harmlessly.
        self.js(&format!("{axe}\n;return typeof axe;")).await;
        let found = self
            .client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                axe.run(document, { resultTypes: ["violations"] })
                    .then((r) => done(r.violations.map((v) =>
                        `${v.id} (${v.impact}): ${v.help}: ` +
                        v.nodes.map((n) => n.target.join(" ")).join(", "))))
                    .catch((e) => done([`axe failed: ${e}`]));"#,
                vec![],
            )
            .await
            .expect("axe runs");
        serde_json::from_value(found.clone())
            .unwrap_or_else(|e| panic!("violations ({e}): {found}"))
    }

    /// [`Browser::axe_violations`] in the elements that `include` (CSS selectors) match
    /// only, at or above `impact` (`minor`, `moderate`, `serious`, `critical`).
    pub async fn axe_violations_in(
        &self,
        axe: &str,
        include: &[&str],
        impact: &str,
    ) -> Vec<String> {
        self.js(&format!("{axe}\n;return typeof axe;")).await;
        let found = self
            .client
            .execute_async(
                r#"const [include, least, done] = arguments;
                const levels = ["minor", "moderate", "serious", "critical"];
                const context = { include: include.map((s) => [s]) };
                axe.run(context, { resultTypes: ["violations"] })
                    .then((r) => done(r.violations
                        .filter((v) => levels.indexOf(v.impact) >= levels.indexOf(least))
                        .map((v) => `${v.id} (${v.impact}): ${v.help}: ` +
                            v.nodes.map((n) => n.target.join(" ")).join(", "))))
                    .catch((e) => done([`axe failed: ${e}`]));"#,
                vec![json!(include), json!(impact)],
            )
            .await
            .expect("axe runs");
        serde_json::from_value(found.clone())
            .unwrap_or_else(|e| panic!("violations ({e}): {found}"))
    }

    pub async fn assert_no_console_errors(&self, during: &str) {
        let errors = self.console_errors().await;
        assert!(
            errors.is_empty(),
            "console errors while {during}: {errors:#?}"
        );
    }
}

/// axe-core's source, from where `./scripts/test.sh` puts it (`target/axe-core/`, fetched
/// from npm at a pinned version); `None` (the test skipped, saying why) when it is not
/// there, unless `CI` is set (see `helpers::needs`).
pub fn axe_core() -> Option<String> {
    let path = target_dir().join("axe-core/node_modules/axe-core/axe.min.js");
    let source = std::fs::read_to_string(&path).ok();
    needs(
        "axe-core (./scripts/test.sh fetches it from npm)",
        source.is_some(),
    )
    .then(|| source.expect("read above"))
}

/// `chunkstream_chunks_sent_total{transport}`; fails the test if the series is missing.
pub async fn chunks_sent(app: &TestApp, transport: &str) -> f64 {
    app.metric("chunkstream_chunks_sent_total", &[("transport", transport)])
        .await
}

/// `chunkstream_open_streams{transport}`; fails the test if the series is missing.
pub async fn open_streams(app: &TestApp, transport: &str) -> f64 {
    app.metric("chunkstream_open_streams", &[("transport", transport)])
        .await
}
