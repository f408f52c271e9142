//! The live page in a real browser: headless Chromium driven over WebDriver (chromedriver),
//! against the page that `spawn_app()` serves. The page exposes each panel's state as
//! `data-*` attributes and the chart's data through `window.chunkstreamChart`; the tests read
//! those, and the server's own metrics, under deadlines — never after a sleep. The browser
//! itself is in `harness`; `chart` tests the chart of chunks per second, `a11y` runs axe-core
//! on the page, `docs` drives Swagger UI at `/docs` (streams, Stop, the WebSocket try-out),
//! `edge` runs it behind `deploy/nginx.conf` in several tabs (HTTP/2, and the
//! six-connection cap of HTTP/1.1), `prefix` under a path prefix, `restart` a server restart
//! mid-stream (SSE and WebTransport resume), and `wt` the WebTransport panel without
//! WebTransport (server off, UDP blocked).

mod a11y;
mod chart;
mod docs;
mod edge;
mod harness;
mod prefix;
mod restart;
mod wt;

use std::time::{Duration, Instant};

use fantoccini::key::Key;
use futures_util::FutureExt;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, wait_until};
use harness::{Options, SOON, chunks_sent, open_streams, with_browser, with_browser_at};

/// The page's transports, as its panels name them.
const TRANSPORTS: [&str; 5] = ["text", "sse", "ws", "jsonl", "wt"];

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

        let done = b.wait_whole(transport, count, SOON).await;
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
async fn json_lines_stream_live_in_order_and_stop_in_the_browser() {
    streams_live_in_order_and_stops("jsonl").await;
}

#[tokio::test]
async fn webtransport_streams_live_in_order_and_stops_in_the_browser() {
    streams_live_in_order_and_stops("wt").await;
}

/// Pause holds a stream that takes control messages, on the page and on the server, and
/// Resume finishes it.
async fn pause_holds_the_stream_and_resume_finishes_it(transport: &str) {
    let app = spawn_app().await;
    with_browser(&app, &format!("{transport}-pause"), async |b| {
        b.open_page().await;
        let count = 30;
        b.choose(transport, count, 100).await;
        b.click("#start").await;
        b.wait_panel(transport, "a few chunks", SOON, |p| p.count >= 3)
            .await;
        assert!(
            b.is_disabled("resume").await,
            "Resume is disabled while streaming"
        );
        b.click("#pause").await;
        let paused = b
            .wait_panel(transport, "the paused state", SOON, |p| p.state == "paused")
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
        let sent_paused = chunks_sent(&app, transport).await;
        let window = Instant::now();
        while window.elapsed() < Duration::from_millis(1_000) {
            let p = b.panel(transport).await;
            assert!(
                p.count <= paused.count + 1,
                "chunks kept coming while paused: {p:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sent_later = chunks_sent(&app, transport).await;
        assert!(
            sent_later <= sent_paused + 1.0,
            "the server kept sending while paused: {sent_paused} then {sent_later}"
        );
        assert_eq!(
            open_streams(&app, transport).await,
            1.0,
            "a paused stream stays open"
        );
        b.screenshot(&format!("{transport}-paused")).await;

        b.click("#resume").await;
        b.wait_panel(transport, "streaming again", SOON, |p| p.state != "paused")
            .await;
        let done = b
            .wait_panel(transport, "the end of the stream", SOON, |p| {
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
async fn websocket_pause_holds_the_stream_and_resume_finishes_it_in_the_browser() {
    pause_holds_the_stream_and_resume_finishes_it("ws").await;
}

#[tokio::test]
async fn webtransport_pause_holds_the_stream_and_resume_finishes_it_in_the_browser() {
    pause_holds_the_stream_and_resume_finishes_it("wt").await;
}

#[tokio::test]
async fn race_runs_every_transport_side_by_side_in_the_browser() {
    let app = spawn_app().await;
    with_browser(&app, "race", async |b| {
        // Tall enough for the chart and the panels in one screenshot.
        b.client
            .set_window_size(1280, 1400)
            .await
            .expect("resize the window");
        b.open_page().await;
        let count = 40;
        b.choose("race", count, 100).await;
        b.click("#start").await;
        let visible = b
            .js(r#"return [...document.querySelectorAll(".panel")].filter((p) => !p.hidden).length;"#)
            .await;
        assert_eq!(visible, json!(TRANSPORTS.len()), "race shows every panel");
        for transport in TRANSPORTS {
            b.wait_panel(transport, "the race under way", SOON, |p| p.count >= 12)
                .await;
        }
        b.screenshot("race").await;
        for transport in TRANSPORTS {
            let done = b.wait_done(transport, count, SOON).await;
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
async fn each_panel_says_how_its_stream_was_encoded_in_the_browser() {
    let app = spawn_app().await;
    let ran = with_browser_at(&app.url("/"), "encodings", Options::default(), async |b| {
        // Tall enough for the panels in the screenshot.
        b.client
            .set_window_size(1280, 1500)
            .await
            .expect("resize the window");
        b.open_page().await;
        let count = 400;
        b.choose("race", count, 5).await;
        b.click("#start").await;
        for transport in TRANSPORTS {
            let done = b.wait_done(transport, count, SOON).await;
            assert_eq!(done.indexes.last(), Some(&(count - 1)), "{done:?}");
        }
        // Chromium asks for gzip: the fetch streams tell it by their header, the
        // EventSource (which shows no headers) by its bytes on the wire, once it has ended.
        for transport in ["text", "jsonl", "sse"] {
            let expected = if transport == "sse" {
                "compressed"
            } else {
                "gzip"
            };
            let p = b
                .wait_panel(
                    transport,
                    "the encoding and the bytes on the wire",
                    SOON,
                    |p| p.wire.contains("decoded"),
                )
                .await;
            assert_eq!(p.encoding, expected, "{p:?}");
        }
        let ws = b.panel("ws").await;
        assert!(
            ["permessage-deflate", "identity"].contains(&ws.encoding.as_str()),
            "{ws:?}"
        );
        assert_eq!(ws.protocol, "http/1.1 upgrade", "{ws:?}");
        b.screenshot("encodings").await;
        b.assert_no_console_errors("racing compressed").await;
    })
    .await;
    if !ran {
        return;
    }
    // The server agrees: gzip bytes went out on every HTTP transport.
    for transport in ["text", "sse", "jsonl"] {
        let gzip = app
            .metric(
                "chunkstream_bytes_sent_total",
                &[("transport", transport), ("encoding", "gzip")],
            )
            .await;
        assert!(gzip > 0.0, "{transport}");
    }
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
            let wanted = [
                "/stream",
                "/stream/sse",
                "/stream/ws",
                "/stream/jsonl",
                "/stream/wt",
            ];
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
