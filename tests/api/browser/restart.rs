//! A server restart in the middle of a stream, in the browser: the first server goes, a
//! successor comes up on the same address, and the page resumes after the last chunk it
//! received, losing none and repeating none. SSE resumes by the browser's own `EventSource`
//! (`Last-Event-ID`); WebTransport by the page, which asks the successor where the session is
//! and opens it with `start`.

use std::time::{Duration, Instant};

use futures_util::FutureExt;

use super::harness::{
    Browser, Options, Panel, SOON, SseRequest, chunks_sent, open_streams, with_browser_at,
};
use crate::helpers::{TestApp, outcome, spawn_app_at, spawn_app_with, wait_until};

/// Streams `count` chunks 100 ms apart over `transport` alone, and shuts `first` down once
/// the panel holds 8 of them: the panel as the cut left it, mid-stream, in order, waiting
/// to reconnect and showing no error.
async fn cut_mid_stream(b: &Browser, transport: &str, count: u64, first: TestApp) -> Panel {
    b.open_page().await;
    b.choose(transport, count, 100).await;
    b.click("#start").await;
    let early = b
        .wait_panel(transport, "chunks from the first server", SOON, |p| {
            p.count >= 8
        })
        .await;
    assert_eq!(early.state, "streaming", "{early:?}");
    first
        .shutdown()
        .await
        .expect("the first server stops cleanly");
    b.wait_panel(transport, "the page to see the server go", SOON, |p| {
        p.state == "reconnecting"
    })
    .await;
    // Nobody listens now, so the page holds exactly what the first server sent.
    b.next_frame().await;
    let cut = b.panel(transport).await;
    assert_eq!(cut.state, "reconnecting", "{cut:?}");
    assert!(
        (8..count).contains(&cut.count),
        "the cut came mid-stream: {cut:?}"
    );
    assert_eq!(cut.last, Some(cut.count - 1), "{cut:?}");
    assert!(cut.in_order, "{cut:?}");
    assert!(cut.error.is_empty(), "a cut is not an error: {cut:?}");
    cut
}

#[tokio::test]
async fn sse_resumes_across_a_server_restart_in_the_browser() {
    /// The `retry:` the servers announce: the browser reconnects this soon after a cut.
    const RETRY_MS: u64 = 200;
    let count: u64 = 40;
    let first = spawn_app_with(|c| c.sse_retry_ms = RETRY_MS).await;
    let addr = first.addr;
    let base = first.url("/");
    let url = first.url(&format!("/stream/sse?count={count}&interval_ms=100"));
    let options = Options {
        network_log: true,
        ..Options::default()
    };
    // Every check is inside: nothing to skip besides when the browser is missing.
    let _ran = with_browser_at(&base, "sse-restart", options, async move |b| {
        let cut = cut_mid_stream(b, "sse", count, first).await;
        let from_first = cut.count;
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
        b.wait_whole("sse", count, SOON).await;
        b.screenshot("sse-restart").await;

        // The successor served the rest and only the rest, in one stream that completed.
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
            crate::helpers::outcome(&successor, "sse", "completed").await,
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

/// The server goes away mid-stream (graceful shutdown: close code 1), and a successor comes up
/// on the same address: the page asks it where the session is and resumes after the last
/// chunk it received, losing none and repeating none.
#[tokio::test]
async fn webtransport_resumes_across_a_server_restart_in_the_browser() {
    let count: u64 = 40;
    let first = spawn_app_with(|_| {}).await;
    let addr = first.addr;
    let _ran = with_browser_at(
        &first.url("/"),
        "wt-restart",
        Options::default(),
        async move |b| {
            let from_first = cut_mid_stream(b, "wt", count, first).await.count;

            let successor = spawn_app_at(addr, |_| {}).await;
            b.wait_whole("wt", count, SOON).await;
            b.screenshot("wt-restart").await;
            wait_until(SOON, "the successor to close the session", || {
                open_streams(&successor, "wt").map(|n| n == 0.0)
            })
            .await;
            assert_eq!(
                chunks_sent(&successor, "wt").await,
                (count - from_first) as f64
            );
            assert_eq!(outcome(&successor, "wt", "completed").await, 1.0);
            // The page tried while nobody listened: the browser logs those failed loads.
            let errors = super::wt::errors_besides_stream_wt(b).await;
            assert!(errors.is_empty(), "console errors: {errors:#?}");
        },
    )
    .await;
}
