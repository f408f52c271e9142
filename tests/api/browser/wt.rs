//! The page's WebTransport panel where there is no WebTransport to be had — a server run with
//! `--webtransport off`, UDP that carries nothing: the panel says so in words and the race
//! runs the other four (its resuming across a restart is in `restart`). And `/docs`, where
//! `GET /stream/wt` is an ordinary JSON operation, which the streaming plugin leaves to
//! Swagger UI.

use chunkstream::config::WebTransport;

use super::TRANSPORTS;
use super::harness::{Browser, Options, SOON, open_streams, with_browser, with_browser_at};
use crate::helpers::spawn_app_with;

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
pub(super) async fn errors_besides_stream_wt(b: &Browser) -> Vec<String> {
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
