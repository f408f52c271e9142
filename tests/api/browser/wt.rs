//! The page's WebTransport panel where there is no WebTransport to be had — a server run with
//! `--webtransport off`, UDP that carries nothing — and when its server goes away: the panel
//! says so in words, the race runs the other four, and a going-away server's successor
//! resumes the stream where it was cut. And `/docs`, where `GET /stream/wt` is an ordinary
//! JSON operation, which the streaming plugin leaves to Swagger UI.

use chunkstream::config::WebTransport;
use futures_util::FutureExt;

use super::TRANSPORTS;
use super::harness::{
    Browser, Options, SOON, chunks_sent, open_streams, with_browser, with_browser_at,
};
use crate::helpers::{TestApp, outcome, spawn_app_at, spawn_app_with, wait_until};

/// The words an unavailable WebTransport panel starts with.
const UNAVAILABLE: &str = "WebTransport is unavailable";

/// The transports that are not WebTransport.
fn the_other_four() -> impl Iterator<Item = &'static str> {
    TRANSPORTS.into_iter().filter(|&t| t != "wt")
}

/// With a race of `count` chunks under way: the other four finish in order while the
/// WebTransport panel ends `unavailable`, saying `words`, and the chart settles with every
/// line.
async fn the_race_runs_without_webtransport(b: &Browser, count: u64, words: &[&str]) {
    for transport in the_other_four() {
        b.wait_done(transport, count, SOON).await;
    }
    let wt = b
        .wait_panel("wt", "the panel to give up", SOON * 2, |p| {
            !matches!(p.state.as_str(), "connecting" | "streaming")
        })
        .await;
    assert_eq!(wt.state, "unavailable", "{wt:?}");
    assert_eq!(wt.count, 0, "{wt:?}");
    assert_eq!(wt.protocol, "h3", "{wt:?}");
    for words in [UNAVAILABLE, "The other transports run without it."]
        .iter()
        .chain(words)
    {
        assert!(wt.error.contains(words), "{words:?} in {wt:?}");
    }
    assert!(!wt.waiting && wt.wait.is_empty(), "{wt:?}");
    let chart = b.wait_chart("every line ended", SOON, |c| c.settled).await;
    let names: Vec<&str> = chart.series.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, TRANSPORTS, "{chart:#?}");
    assert!(
        chart.summary.contains("WebTransport 0/s (unavailable)"),
        "{chart:#?}"
    );
    assert!(b.is_disabled("stop").await, "nothing runs any more");
}

/// Console errors other than the failed loads of `/stream/wt` (the browser logs a 404 as one).
async fn errors_besides_stream_wt(b: &Browser) -> Vec<String> {
    b.console_errors()
        .await
        .into_iter()
        .filter(|e| !e.contains("/stream/wt"))
        .collect()
}

#[tokio::test]
async fn without_webtransport_on_the_server_the_panel_says_so_and_the_race_runs_four_in_the_browser()
 {
    let app = spawn_app_with(|c| c.webtransport = WebTransport::Off).await;
    let ran = with_browser_at(&app.url("/"), "wt-off", Options::default(), async |b| {
        b.open_page().await;
        let count = 20;
        b.choose("race", count, 50).await;
        b.click("#start").await;
        the_race_runs_without_webtransport(b, count, &["--webtransport off"]).await;
        b.screenshot("wt-off").await;
        let errors = errors_besides_stream_wt(b).await;
        assert!(errors.is_empty(), "console errors: {errors:#?}");
    })
    .await;
    if ran {
        assert_eq!(open_streams(&app, "wt").await, 0.0);
    }
}

#[tokio::test]
async fn where_udp_carries_nothing_the_panel_says_so_and_the_race_runs_four_in_the_browser() {
    let app = spawn_app_with(|c| c.webtransport = WebTransport::At(loopback())).await;
    // A UDP port that reads nothing and answers nothing: a firewall that drops the packets.
    let black_hole = std::net::UdpSocket::bind(loopback()).expect("a UDP socket");
    let port = black_hole.local_addr().expect("its address").port();
    let _ran = with_browser_at(&app.url("/"), "wt-blocked", Options::default(), async |b| {
        b.open_page().await;
        // The page is told the session is there: as when a firewall is on the way to it.
        b.js(&send_sessions_to(port)).await;
        let count = 20;
        b.choose("race", count, 100).await;
        b.click("#start").await;
        // While the handshake goes unanswered, the panel says what it waits for.
        let waiting = b
            .wait_panel("wt", "the panel to say it waits", SOON, |p| p.waiting)
            .await;
        assert_eq!(waiting.state, "connecting", "{waiting:?}");
        assert!(
            waiting.wait.contains("Waiting for the HTTP/3 handshake")
                && waiting.wait.contains(&format!("127.0.0.1:{port} over UDP")),
            "{waiting:?}"
        );
        the_race_runs_without_webtransport(b, count, &["over UDP", "blocked"]).await;
        b.screenshot("wt-blocked").await;
        // Chromium logs the handshake it gave up on, naming the session's URL.
        let errors = errors_besides_stream_wt(b).await;
        assert!(errors.is_empty(), "console errors: {errors:#?}");
    })
    .await;
    drop(black_hole);
}

/// `127.0.0.1:0`.
fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().expect("a loopback address")
}

/// A script for the page that points the sessions `GET stream/wt` describes at UDP `port`.
fn send_sessions_to(port: u16) -> String {
    format!(
        r#"const fetch = window.fetch;
        window.fetch = async (input, init) => {{
            const resp = await fetch(input, init);
            if (!String(input).includes("/stream/wt?") || !resp.ok) return resp;
            const answer = await resp.json();
            const url = new URL(answer.url);
            url.port = "{port}";
            return Response.json({{ ...answer, url: url.href }});
        }};
        return null;"#
    )
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
            b.open_page().await;
            b.choose("wt", count, 100).await;
            b.click("#start").await;
            let early = b
                .wait_panel("wt", "chunks from the first server", SOON, |p| p.count >= 8)
                .await;
            assert_eq!(early.state, "streaming", "{early:?}");

            first
                .shutdown()
                .await
                .expect("the first server stops cleanly");
            b.wait_panel("wt", "the page to see the server go", SOON, |p| {
                p.state == "reconnecting"
            })
            .await;
            // Nobody listens now, so the page holds exactly what the first server sent.
            b.next_frame().await;
            let cut = b.panel("wt").await;
            assert_eq!(cut.state, "reconnecting", "{cut:?}");
            let from_first = cut.count;
            assert!((8..count).contains(&from_first), "{cut:?}");
            assert_eq!(cut.last, Some(from_first - 1), "{cut:?}");
            assert!(cut.in_order && cut.error.is_empty(), "{cut:?}");

            let successor = spawn_app_at(addr, |_| {}).await;
            let done = b
                .wait_panel("wt", "the end of the resumed stream", SOON, |p| {
                    !matches!(
                        p.state.as_str(),
                        "connecting" | "streaming" | "reconnecting"
                    )
                })
                .await;
            b.screenshot("wt-restart").await;
            assert_eq!(done.state, "done", "{done:?}");
            assert_eq!(done.count, count, "{done:?}");
            assert!(done.in_order, "{done:?}");
            assert_eq!(done.indexes, (0..count).collect::<Vec<_>>(), "{done:?}");
            assert!(done.error.is_empty(), "{done:?}");
            wait_until(SOON, "the successor to close the session", || {
                open_streams(&successor, "wt").map(|n| n == 0.0)
            })
            .await;
            the_successor_sent_the_rest(&successor, count - from_first).await;
            // The page tried while nobody listened: the browser logs those failed loads.
            let errors = errors_besides_stream_wt(b).await;
            assert!(errors.is_empty(), "console errors: {errors:#?}");
        },
    )
    .await;
}

/// The successor served `rest` chunks, in one session that completed.
async fn the_successor_sent_the_rest(successor: &TestApp, rest: u64) {
    assert_eq!(chunks_sent(successor, "wt").await, rest as f64);
    assert_eq!(outcome(successor, "wt", "completed").await, 1.0);
}

#[tokio::test]
async fn docs_show_how_to_open_a_session_as_plain_json_in_the_browser() {
    let app = spawn_app_with(|c| c.webtransport = WebTransport::At(loopback())).await;
    with_browser(&app, "docs-wt", async |b| {
        b.goto("docs").await;
        let op = "#operations-Stream-get_stream_wt";
        b.client
            .wait()
            .at_most(SOON)
            .for_element(fantoccini::Locator::Css(&format!(
                "{op} .opblock-summary-control"
            )))
            .await
            .expect("Swagger UI shows GET /stream/wt");
        b.click(&format!("{op} .opblock-summary-control")).await;
        b.client
            .wait()
            .at_most(SOON)
            .for_element(fantoccini::Locator::Css(&format!("{op} .btn.execute")))
            .await
            .expect("Execute");
        b.click(&format!("{op} .btn.execute")).await;
        let script = format!(
            r#"const t = document.querySelector("{op} .live-responses-table");
            return t ? t.innerText : "";"#
        );
        let start = std::time::Instant::now();
        let response = loop {
            let text = b.js(&script).await.as_str().unwrap_or_default().to_owned();
            if text.contains("serverCertificateHashes") {
                break text;
            }
            assert!(
                start.elapsed() < SOON,
                "Swagger UI shows the answer: {text}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        for words in ["200", "https://127.0.0.1:", "/stream/wt?count=", "sha-256"] {
            assert!(response.contains(words), "{words:?} in {response}");
        }
        let streamed = b
            .js(&format!(
                r#"return document.querySelector("{op} .cs-stream") !== null;"#
            ))
            .await;
        assert_eq!(
            streamed,
            serde_json::json!(false),
            "no stream view for JSON"
        );
        b.screenshot("docs-wt").await;
        b.assert_no_console_errors("executing GET /stream/wt").await;
    })
    .await;
}
