//! `/docs` in a real browser: Swagger UI with the streaming plugin (`static/docs/`).
//! "Execute" shows a stream's items while the server still makes them, Stop ends the stream
//! on the server, the WebSocket operation can be paused, resumed and stopped, refusals show
//! as Swagger UI shows them, nothing is loaded from outside the origin, a second visit
//! downloads nothing new, and axe-core finds no serious violation in what the plugin adds.

use std::time::{Duration, Instant};

use fantoccini::key::Key;
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::Value;

use super::harness::{
    Browser, Options, SOON, axe_core, chunks_sent, open_streams, with_browser, with_browser_at,
};
use crate::helpers::{TestApp, outcome, spawn_app, spawn_app_with, wait_until};

/// How soon the server must see a stopped stream end (the contract: within a second).
const STOP_ENDS_WITHIN: Duration = Duration::from_secs(1);

/// What the plugin's view of one operation's stream shows, read in one go.
#[derive(Debug, Clone, Deserialize)]
struct View {
    /// `streaming`, `paused`, `done`, `stopped`, `closed` or `error`.
    state: String,
    /// Items the server sent (events, lines, messages).
    received: u64,
    /// The status line.
    summary: String,
    /// The chunk index of each item on the page that is a chunk, oldest first.
    indexes: Vec<u64>,
    /// SSE: each row's event name and id.
    events: Vec<(String, Option<String>)>,
    /// Each item as shown.
    texts: Vec<String>,
    /// Each button: its name (its text) and whether it is enabled.
    buttons: Vec<(String, bool)>,
}

impl View {
    fn button(&self, name: &str) -> bool {
        self.buttons
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no button {name}: {self:?}"))
            .1
    }
}

/// Opens `/docs` (as the live page links it: without the slash) and waits for Swagger UI to
/// show the stream operations.
async fn open_docs(b: &Browser) {
    b.goto("docs").await;
    let start = Instant::now();
    loop {
        let ops = b
            .js(r#"return document.querySelectorAll(".opblock-summary-path").length;"#)
            .await;
        if ops.as_u64().is_some_and(|n| n >= 6) {
            break;
        }
        assert!(start.elapsed() < SOON, "Swagger UI shows the operations");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = b.js("return location.pathname;").await;
    assert!(url.as_str().is_some_and(|p| p.ends_with("/docs/")), "{url}");
    b.assert_no_console_errors("loading the docs").await;
}

/// One operation of Swagger UI, by its id (`get_stream_sse`), opened.
struct Operation<'a> {
    b: &'a Browser,
    sel: String,
}

impl<'a> Operation<'a> {
    async fn open(b: &'a Browser, id: &str) -> Self {
        Self::open_in(b, "Stream", id).await
    }

    /// The operation `id` of the group `tag`, opened.
    async fn open_in(b: &'a Browser, tag: &str, id: &str) -> Self {
        let sel = format!("#operations-{tag}-{id}");
        b.click(&format!("{sel} .opblock-summary-control")).await;
        b.client
            .wait()
            .at_most(SOON)
            .for_element(fantoccini::Locator::Css(&format!("{sel} .btn.execute")))
            .await
            .unwrap_or_else(|e| panic!("{id}: Try it out shows Execute: {e}"));
        Self { b, sel }
    }

    /// Types `value` into the parameter `name`, then leaves the field (Swagger UI takes a
    /// value when its field loses focus, or after a pause).
    async fn fill(&self, name: &str, value: &str) {
        // Swagger UI renders the fields a moment after Execute shows (on a busy machine,
        // some moments).
        let css = format!(r#"{} tr[data-param-name="{name}"] input"#, self.sel);
        let input = self
            .b
            .client
            .wait()
            .at_most(SOON)
            .for_element(fantoccini::Locator::Css(&css))
            .await
            .unwrap_or_else(|e| panic!("no field {name}: {e}"));
        input.clear().await.expect("clear the field");
        input
            .send_keys(&format!("{value}{}", Key::Tab))
            .await
            .expect("type into the field");
    }

    async fn execute(&self, params: &[(&str, &str)]) {
        for (name, value) in params {
            self.fill(name, value).await;
        }
        self.b.click(&format!("{} .btn.execute", self.sel)).await;
    }

    /// Clicks the view's button named `name`.
    async fn press(&self, name: &str) {
        let buttons = self
            .b
            .client
            .find_all(fantoccini::Locator::Css(&format!(
                "{} .cs-stream button",
                self.sel
            )))
            .await
            .expect("the view's buttons");
        for button in buttons {
            if button.text().await.expect("a button's text") == name {
                button.click().await.expect("click");
                return;
            }
        }
        panic!("no button {name} in {}", self.sel);
    }

    async fn view(&self) -> Option<View> {
        let v = self
            .b
            .js(&format!(
                r#"const v = document.querySelector("{} .cs-stream");
                if (!v) return null;
                const all = (s) => [...v.querySelectorAll(s)];
                return {{
                    state: v.dataset.state, received: Number(v.dataset.received),
                    summary: v.querySelector(".cs-summary").textContent,
                    indexes: all(".cs-item[data-index]").map((e) => Number(e.dataset.index)),
                    events: all("tr.cs-item").map((e) => [e.dataset.event, e.dataset.id ?? null]),
                    texts: all(".cs-item code").map((e) => e.textContent),
                    buttons: all("button").map((b) => [b.textContent, !b.disabled]),
                }};"#,
                self.sel
            ))
            .await;
        (!v.is_null())
            .then(|| serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}")))
    }

    /// Polls the view until `ready` holds; fails with the last reading after `deadline`.
    async fn wait(&self, what: &str, deadline: Duration, ready: impl Fn(&View) -> bool) -> View {
        let start = Instant::now();
        loop {
            let view = self.view().await;
            if let Some(view) = view.as_ref().filter(|v| ready(v)) {
                return view.clone();
            }
            assert!(
                start.elapsed() < deadline,
                "{}: timed out after {deadline:?} waiting for {what}; the view shows {view:?}",
                self.sel
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The text of Swagger UI's "Server response" table.
    async fn live_response(&self) -> String {
        let start = Instant::now();
        loop {
            let text = self
                .b
                .js(&format!(
                    r#"const t = document.querySelector("{} .live-responses-table");
                    return t ? t.innerText : null;"#,
                    self.sel
                ))
                .await;
            if let Some(text) = text.as_str() {
                return text.to_owned();
            }
            assert!(start.elapsed() < SOON, "{}: a server response", self.sel);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Scrolls the view to the middle of the window (for a screenshot).
    async fn show(&self) {
        self.b
            .js(&format!(
                r#"document.querySelector("{} .cs-stream").scrollIntoView({{ block: "center" }});"#,
                self.sel
            ))
            .await;
    }
}

/// Stop on a long stream of `transport` through `op`: the server's stream ends within
/// [`STOP_ENDS_WITHIN`] of the click, and the view says stopped.
async fn stop_ends_the_stream(app: &TestApp, op: &Operation<'_>, transport: &str) {
    op.execute(&[("count", "100000"), ("interval_ms", "100")])
        .await;
    let running = op
        .wait("a few items of a long stream", SOON, |v| {
            v.state == "streaming" && v.received >= 3
        })
        .await;
    assert!(
        running.button("Stop stream"),
        "Stop is enabled: {running:?}"
    );
    assert_eq!(open_streams(app, transport).await, 1.0);
    op.press("Stop stream").await;
    let clicked = Instant::now();
    wait_until(SOON, "the server to end the stopped stream", || {
        open_streams(app, transport).map(|n| n == 0.0)
    })
    .await;
    let took = clicked.elapsed();
    assert!(
        took <= STOP_ENDS_WITHIN,
        "{transport}: the stream ended {took:?} after Stop"
    );
    let stopped = op
        .wait("the stopped state", SOON, |v| v.state == "stopped")
        .await;
    assert!(stopped.received < 100_000, "{stopped:?}");
    assert!(
        !stopped.button("Stop stream"),
        "Stop is disabled: {stopped:?}"
    );
    assert!(stopped.summary.starts_with("Stopped after"), "{stopped:?}");
    assert_eq!(outcome(app, transport, "client_gone").await, 1.0);
}

#[tokio::test]
async fn docs_execute_shows_events_as_they_arrive_and_stop_ends_the_stream_in_the_browser() {
    let app = spawn_app().await;
    with_browser(&app, "docs-sse", async |b| {
        b.client
            .set_window_size(1280, 1000)
            .await
            .expect("resize the window");
        open_docs(b).await;
        let op = Operation::open(b, "get_stream_sse").await;
        let count = 30;
        let sent_before = chunks_sent(&app, "sse").await;
        op.execute(&[("count", "30"), ("interval_ms", "200")]).await;

        let early = op
            .wait("the first event", SOON, |v| !v.indexes.is_empty())
            .await;
        let sent = chunks_sent(&app, "sse").await - sent_before;
        assert!(
            sent < count as f64,
            "the first event must be on the page before the server sends the last \
             (sent {sent} of {count}): {early:?}"
        );
        assert_eq!(early.state, "streaming", "{early:?}");
        assert_eq!(early.events[0], ("chunk".into(), Some("0".into())), "{early:?}");
        assert!(early.button("Stop stream"), "{early:?}");
        let response = op.live_response().await;
        assert!(
            response.contains("200") && response.contains("content-type: text/event-stream"),
            "Swagger UI shows the status and headers at once: {response}"
        );
        // The README's picture (docs/docs-sse.png): Execute, the request, and the events
        // arriving, with Stop.
        op.wait("a few events", SOON, |v| v.received >= 8).await;
        b.js(r##"document.querySelector("#operations-Stream-get_stream_sse .btn.execute")
            .scrollIntoView({ block: "start" }); window.scrollBy(0, -12);"##)
            .await;
        b.screenshot("docs-sse-streaming").await;

        let done = op
            .wait("the end of the stream", SOON, |v| v.state != "streaming")
            .await;
        assert_eq!(done.state, "done", "{done:?}");
        assert_eq!(done.received, count + 1, "every chunk and the end: {done:?}");
        assert_eq!(done.indexes, (0..count).collect::<Vec<_>>(), "{done:?}");
        let (last, rest) = done.events.split_last().expect("events");
        assert_eq!(last, &("end".into(), None), "{done:?}");
        for (i, event) in rest.iter().enumerate() {
            assert_eq!(event, &("chunk".into(), Some(i.to_string())), "{done:?}");
        }
        assert_eq!(
            done.texts.first().map(String::as_str),
            Some(r#"{ "index": 0, "text": "Data Chunk 0" }"#),
            "each event's JSON data, readable: {done:?}"
        );
        assert_eq!(
            done.texts.last().map(String::as_str),
            Some(r#"{ "count": 30 }"#)
        );
        assert!(done.summary.starts_with("Done: 31 events in"), "{done:?}");
        // The item schema is shown, with an example, before anyone executes anything.
        let items = b
            .js(r##"return [...document.querySelectorAll("#operations-Stream-get_stream_sse .cs-item-schema")].map((e) => e.innerText);"##)
            .await;
        let items = items.to_string();
        assert!(
            items.contains("Each event of text/event-stream") && items.contains("data: {"),
            "{items}"
        );

        stop_ends_the_stream(&app, &op, "sse").await;

        // Execute again while a stream runs: the old one ends on the server, the new one
        // shows. Clear while one runs: it ends too, and its view goes.
        op.execute(&[("count", "100000"), ("interval_ms", "100")])
            .await;
        op.wait("a long stream", SOON, |v| v.received >= 2).await;
        op.execute(&[("count", "3"), ("interval_ms", "0")]).await;
        let again = op
            .wait("the new stream's end", SOON, |v| {
                v.state == "done" && v.received == 4
            })
            .await;
        assert_eq!(again.indexes, [0, 1, 2], "{again:?}");
        wait_until(SOON, "the replaced stream to end", || {
            open_streams(&app, "sse").map(|n| n == 0.0)
        })
        .await;
        op.execute(&[("count", "100000"), ("interval_ms", "100")])
            .await;
        op.wait("a long stream", SOON, |v| v.received >= 2).await;
        b.click(&format!("{} .btn-clear", op.sel)).await;
        wait_until(SOON, "the cleared stream to end", || {
            open_streams(&app, "sse").map(|n| n == 0.0)
        })
        .await;
        assert!(op.view().await.is_none(), "Clear removes the view");
        assert_eq!(outcome(&app, "sse", "client_gone").await, 3.0);
        b.assert_no_console_errors("streaming and stopping in the docs")
            .await;
    })
    .await;
}

#[tokio::test]
async fn docs_execute_shows_json_lines_and_text_as_they_arrive_and_stops_them_in_the_browser() {
    let app = spawn_app().await;
    with_browser(&app, "docs-lines", async |b| {
        open_docs(b).await;
        for (id, transport) in [("get_stream_jsonl", "jsonl"), ("get_stream", "text")] {
            let op = Operation::open(b, id).await;
            let count = 20;
            let sent_before = chunks_sent(&app, transport).await;
            op.execute(&[("count", "20"), ("interval_ms", "150")]).await;
            let early = op
                .wait("the first line", SOON, |v| !v.texts.is_empty())
                .await;
            let sent = chunks_sent(&app, transport).await - sent_before;
            assert!(
                sent < count as f64,
                "{transport}: the first line is on the page before the server sends the last \
                 (sent {sent} of {count}): {early:?}"
            );
            let done = op
                .wait("the end of the stream", SOON, |v| v.state != "streaming")
                .await;
            assert_eq!(done.state, "done", "{done:?}");
            assert_eq!(done.received, count, "{done:?}");
            let texts: Vec<String> = (0..count)
                .map(|i| match transport {
                    "jsonl" => format!(r#"{{ "index": {i}, "text": "Data Chunk {i}" }}"#),
                    _ => format!("Data Chunk {i}"),
                })
                .collect();
            assert_eq!(done.texts, texts, "one readable item per line");
            if transport == "jsonl" {
                assert_eq!(done.indexes, (0..count).collect::<Vec<_>>());
            }
            stop_ends_the_stream(&app, &op, transport).await;
            b.screenshot(&format!("docs-{transport}")).await;
        }
        // A short body of known length is Swagger UI's to show, as always.
        let metrics = Operation::open_in(b, "Operations", "get_metrics").await;
        b.click(&format!("{} .btn.execute", metrics.sel)).await;
        let response = metrics.live_response().await;
        assert!(response.contains("chunkstream_open_streams"), "{response}");
        assert!(
            metrics.view().await.is_none(),
            "no stream view for a plain body"
        );
        b.assert_no_console_errors("streaming lines in the docs")
            .await;
    })
    .await;
}

#[tokio::test]
async fn docs_websocket_try_out_pauses_resumes_and_stops_in_the_browser() {
    let app = spawn_app().await;
    with_browser(&app, "docs-ws", async |b| {
        open_docs(b).await;
        let op = Operation::open(b, "get_stream_ws").await;
        op.execute(&[("count", "40"), ("interval_ms", "100")]).await;
        let early = op.wait("a few messages", SOON, |v| v.received >= 3).await;
        assert_eq!(early.state, "streaming", "{early:?}");
        assert!(early.button("Pause") && !early.button("Resume") && early.button("Stop"));
        let response = op.live_response().await;
        assert!(response.contains("101"), "{response}");
        assert_eq!(open_streams(&app, "ws").await, 1.0);

        op.press("Pause").await;
        let paused = op
            .wait("the paused state", SOON, |v| v.state == "paused")
            .await;
        assert!(
            !paused.button("Pause") && paused.button("Resume"),
            "{paused:?}"
        );
        assert!(
            paused
                .texts
                .last()
                .is_some_and(|t| t == r#"{"action":"pause"}"#),
            "the control message sent is shown: {paused:?}"
        );
        // While paused nothing moves, on the page or on the server, for ten intervals (one
        // chunk may have been in flight). Observing an absence takes time: this window is
        // the measurement, not a synchronisation.
        let sent_paused = chunks_sent(&app, "ws").await;
        let window = Instant::now();
        while window.elapsed() < Duration::from_millis(1_000) {
            let v = op.view().await.expect("the view");
            assert!(
                v.received <= paused.received + 1,
                "messages while paused: {v:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sent_later = chunks_sent(&app, "ws").await;
        assert!(
            sent_later <= sent_paused + 1.0,
            "{sent_paused} then {sent_later}"
        );
        assert_eq!(
            open_streams(&app, "ws").await,
            1.0,
            "a paused stream stays open"
        );

        op.press("Resume").await;
        let resumed = op
            .wait("messages after Resume", SOON, |v| {
                v.state == "streaming" && v.received > paused.received + 1
            })
            .await;
        op.show().await;
        b.screenshot("docs-ws-resumed").await;
        op.press("Stop").await;
        let closed = op.wait("the close", SOON, |v| v.state == "closed").await;
        assert!(
            closed
                .summary
                .contains(r#"close code 1000, reason "stopped""#),
            "the close code and reason are shown: {closed:?}"
        );
        assert!(
            closed.received < 40 && closed.received >= resumed.received,
            "{closed:?}"
        );
        let indexes = &closed.indexes;
        assert!(
            indexes.windows(2).all(|w| w[1] == w[0] + 1) && indexes.first() == Some(&0),
            "in order, none lost: {closed:?}"
        );
        wait_until(SOON, "the server to close the stopped WebSocket", || {
            open_streams(&app, "ws").map(|n| n == 0.0)
        })
        .await;
        assert_eq!(outcome(&app, "ws", "stopped").await, 1.0);

        // A stream that runs to its end closes with 1000 `done`.
        op.execute(&[("count", "5"), ("interval_ms", "0")]).await;
        let done = op
            .wait("the end of a short stream", SOON, |v| v.state == "closed")
            .await;
        assert_eq!(done.received, 5, "{done:?}");
        assert!(
            done.summary.contains(r#"close code 1000, reason "done""#),
            "{done:?}"
        );
        b.assert_no_console_errors("the WebSocket try-out").await;
    })
    .await;
}

#[tokio::test]
async fn docs_show_refusals_as_swagger_ui_shows_them_in_the_browser() {
    let app = spawn_app_with(|c| c.max_streams_per_client = 1).await;
    with_browser(&app, "docs-refusals", async |b| {
        open_docs(b).await;
        // A rule OpenAPI cannot express: `start` past `count`. The server's 400 and its body.
        let op = Operation::open(b, "get_stream_sse").await;
        op.execute(&[("count", "5"), ("start", "9")]).await;
        let response = op.live_response().await;
        assert!(
            response.contains("400") && response.contains("`start` must be at most `count`"),
            "{response}"
        );
        assert!(op.view().await.is_none(), "no stream view for an error");

        // This client's share taken (by another client of the same address): 429 with
        // `Retry-After`, as Swagger UI shows any response.
        let held = app
            .client
            .get(app.url("/stream?count=100000&interval_ms=1000"))
            .send()
            .await
            .expect("a held stream");
        assert_eq!(held.status(), 200);
        let lines = Operation::open(b, "get_stream_jsonl").await;
        lines.execute(&[("count", "5")]).await;
        let response = lines.live_response().await;
        assert!(
            response.contains("429") && response.contains("retry-after: 1"),
            "{response}"
        );
        assert!(lines.view().await.is_none());

        // A WebSocket refused before it opens: a browser learns no status, the docs say so.
        let ws = Operation::open(b, "get_stream_ws").await;
        ws.execute(&[("count", "5")]).await;
        let response = ws.live_response().await;
        assert!(
            response.contains("the WebSocket closed before it opened"),
            "{response}"
        );
        drop(held);
        b.js(
            r##"document.querySelector("#operations-Stream-get_stream_ws .live-responses-table")
            .scrollIntoView({ block: "center" });"##,
        )
        .await;
        b.screenshot("docs-refusals").await;
        // The browser itself logs each refused load; nothing else may go wrong.
        let errors = b.console_errors().await;
        let unexpected: Vec<_> = errors.iter().filter(|e| !e.contains("/stream")).collect();
        assert!(unexpected.is_empty(), "console errors: {unexpected:#?}");
    })
    .await;
}

/// The requests of `events` (Chromium's network events): `(id, url)`, WebSockets included.
fn requests(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| {
            e["method"] == "Network.requestWillBeSent" || e["method"] == "Network.webSocketCreated"
        })
        .map(|e| {
            let p = &e["params"];
            let url = p["request"]["url"].as_str().or(p["url"].as_str());
            (
                p["requestId"].as_str().unwrap_or_default().to_owned(),
                url.unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn docs_load_nothing_from_outside_the_origin_and_a_second_visit_downloads_nothing_new_in_the_browser()
 {
    let app = spawn_app().await;
    let options = Options {
        network_log: true,
        ..Options::default()
    };
    let base = app.url("/");
    let ws_base = base.replacen("http://", "ws://", 1);
    // Every check is inside: nothing to skip besides when the browser is missing.
    let _ran = with_browser_at(&base, "docs-network", options, async |b| {
        open_docs(b).await;
        // Everything the page loads and opens, streams and a WebSocket included.
        let sse = Operation::open(b, "get_stream_sse").await;
        sse.execute(&[("count", "3")]).await;
        sse.wait("the end", SOON, |v| v.state == "done").await;
        let ws = Operation::open(b, "get_stream_ws").await;
        ws.execute(&[("count", "3")]).await;
        ws.wait("the close", SOON, |v| v.state == "closed").await;
        // The browser's own pages (its new tab page, `chrome://`) are not the docs'.
        let first: Vec<_> = requests(&b.network_events().await)
            .into_iter()
            .filter(|(_, url)| {
                ["http:", "https:", "ws:", "wss:"]
                    .iter()
                    .any(|s| url.starts_with(s))
            })
            .collect();
        assert!(first.len() >= 8, "{first:#?}");
        for (_, url) in &first {
            assert!(
                url.starts_with(&base) || url.starts_with(&ws_base),
                "a request outside the origin: {url}\n{first:#?}"
            );
        }

        // A second visit: the page and the document are revalidated (304), the assets come
        // from the cache without a request to the server.
        b.goto("").await;
        b.network_events().await;
        open_docs(b).await;
        let events = b.network_events().await;
        let from_cache: Vec<&str> = events
            .iter()
            .filter(|e| e["method"] == "Network.requestServedFromCache")
            .filter_map(|e| e["params"]["requestId"].as_str())
            .collect();
        // The status on the wire (a revalidated response reaches the page as the cached 200).
        let on_the_wire = |id: &str| {
            events
                .iter()
                .filter(|e| e["method"] == "Network.responseReceivedExtraInfo")
                .find(|e| e["params"]["requestId"].as_str() == Some(id))
                .and_then(|e| e["params"]["statusCode"].as_u64())
        };
        let mut seen = Vec::new();
        for e in events
            .iter()
            .filter(|e| e["method"] == "Network.responseReceived")
        {
            let id = e["params"]["requestId"].as_str().unwrap_or_default();
            let response = &e["params"]["response"];
            let url = response["url"].as_str().unwrap_or_default().to_owned();
            let cached = response["fromDiskCache"] == true || from_cache.contains(&id);
            let wire = on_the_wire(id);
            assert!(
                cached || wire == Some(304),
                "downloaded again on a second visit: {url} ({wire:?} on the wire)"
            );
            seen.push((url, if cached { "cache" } else { "304" }));
        }
        eprintln!("the second visit: {seen:#?}");
        for wanted in [
            "/docs/",
            "swagger-ui-bundle.js",
            "streaming.js",
            "/openapi.json",
        ] {
            assert!(
                seen.iter().any(|(u, _)| u.contains(wanted)),
                "{wanted} on the second visit: {seen:#?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn axe_finds_no_serious_violation_in_what_the_docs_add_in_the_browser() {
    let Some(axe) = axe_core() else {
        return;
    };
    let app = spawn_app().await;
    with_browser(&app, "docs-a11y", async |b| {
        open_docs(b).await;
        let sse = Operation::open(b, "get_stream_sse").await;
        sse.execute(&[("count", "5")]).await;
        sse.wait("the end", SOON, |v| v.state == "done").await;
        let ws = Operation::open(b, "get_stream_ws").await;
        ws.execute(&[("count", "1000"), ("interval_ms", "100")])
            .await;
        ws.wait("messages", SOON, |v| v.received >= 2).await;
        ws.press("Pause").await;
        ws.wait("paused", SOON, |v| v.state == "paused").await;
        let ours = [".cs-stream", ".cs-item-schemas"];
        for state in ["light", "dark"] {
            if state == "dark" {
                b.emulate_media(&[("prefers-color-scheme", "dark")]).await;
            }
            let violations = b.axe_violations_in(&axe, &ours, "serious").await;
            assert!(
                violations.is_empty(),
                "axe-core finds serious violations in the docs' streaming views ({state}):\n{}",
                violations.join("\n")
            );
        }
        b.emulate_media(&[]).await;
        // Swagger UI's own markup is not ours to mend; say what axe thinks of it.
        let theirs = b.axe_violations_in(&axe, &["body"], "serious").await;
        eprintln!(
            "axe-core on the whole docs page (Swagger UI's own markup included): {theirs:#?}"
        );
        ws.press("Stop").await;
    })
    .await;
}

#[tokio::test]
async fn docs_stream_and_open_websockets_under_a_path_prefix_in_the_browser() {
    let app = spawn_app().await;
    let Some(proxy) = super::prefix::PrefixProxy::start("nginx-docs-prefix", app.addr).await else {
        return;
    };
    let base = proxy.base.clone();
    let ran = with_browser_at(&base, "docs-prefix", Options::default(), async |b| {
        // `/demo/docs` redirects to `/demo/docs/`, whose assets and document load from
        // under the prefix (open_docs checks that Swagger UI shows the operations).
        open_docs(b).await;
        let path = b.js("return location.pathname;").await;
        assert_eq!(path, "/demo/docs/");
        let sse = Operation::open(b, "get_stream_sse").await;
        sse.execute(&[("count", "5"), ("interval_ms", "20")]).await;
        let done = sse.wait("the end", SOON, |v| v.state != "streaming").await;
        assert_eq!((done.state.as_str(), done.received), ("done", 6), "{done:?}");
        let url = b
            .js(r##"return document.querySelector("#operations-Stream-get_stream_sse .request-url pre").textContent;"##)
            .await;
        assert!(
            url.as_str()
                .is_some_and(|u| u.starts_with(&format!("{base}stream/sse?count=5"))),
            "the request goes under the prefix: {url}"
        );
        let ws = Operation::open(b, "get_stream_ws").await;
        ws.execute(&[("count", "5"), ("interval_ms", "20")]).await;
        let closed = ws.wait("the close", SOON, |v| v.state == "closed").await;
        assert_eq!(closed.received, 5, "{closed:?}");
        b.assert_no_console_errors("the docs under /demo/").await;
    })
    .await;
    if !ran {
        // What follows checks the requests the browser made.
        return;
    }
    let log = proxy.access_log();
    for route in [
        "/demo/docs/ ",
        "/demo/openapi.json",
        "/demo/stream/sse?",
        "/demo/stream/ws?",
    ] {
        assert!(log.contains(route), "no {route} in nginx's log:\n{log}");
    }
}
