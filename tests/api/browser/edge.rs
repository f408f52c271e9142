//! The page behind `deploy/nginx.conf` (see `scaleout::Deployment`), in several tabs at once:
//! over HTTPS every HTTP stream of every tab is a stream of one HTTP/2 connection, and over
//! plain HTTP/1.1 the browser's cap of six connections per site holds the streams past it
//! back, and the page says why.

use fantoccini::wd::WindowHandle;

use super::TRANSPORTS;
use super::harness::{Browser, Options, Panel, SOON, with_browser_at};
use crate::helpers::wait_until;
use crate::scaleout::{Deployment, PROXY_PORT, TLS_PORT};

/// Tabs racing at once: one more than the three that took every connection before JSON Lines
/// (now two take them, three HTTP streams each).
const TABS: usize = 4;

/// The page's transports whose streams are HTTP responses: over HTTP/1.1 each holds one of
/// the browser's connections to the site. (The WebSocket and the WebTransport session have
/// connections of their own.)
const HTTP_TRANSPORTS: [&str; 3] = ["text", "sse", "jsonl"];

/// The cap on connections per site that browsers keep over HTTP/1.1.
const CONNECTIONS_PER_SITE: f64 = 6.0;

/// `TABS` tabs on the page, each loaded before any stream starts (over HTTP/1.1 a page
/// cannot even load while its streams hold every connection). The first is the one open.
async fn open_tabs(b: &Browser) -> Vec<WindowHandle> {
    b.open_page().await;
    let mut tabs = vec![b.client.window().await.expect("the first tab")];
    while tabs.len() < TABS {
        tabs.push(b.open_tab().await);
    }
    tabs
}

/// Starts a race of `count` chunks, one every `interval_ms`, in `tab`.
async fn start_race(b: &Browser, tab: &WindowHandle, count: u64, interval_ms: u64) {
    b.switch_to(tab).await;
    b.choose("race", count, interval_ms).await;
    b.click("#start").await;
}

/// Streams of `transports` open now, summed over both instances.
async fn open_streams(deployment: &Deployment, transports: &[&str]) -> f64 {
    let mut sum = 0.0;
    for transport in transports {
        sum += deployment
            .metric("chunkstream_open_streams", &[("transport", transport)])
            .await;
    }
    sum
}

/// Every panel of every tab, read tab by tab: `(tab number, transport, panel)`.
async fn panels(b: &Browser, tabs: &[WindowHandle]) -> Vec<(usize, &'static str, Panel)> {
    let mut all = Vec::new();
    for (i, tab) in tabs.iter().enumerate() {
        b.switch_to(tab).await;
        for transport in TRANSPORTS {
            all.push((i + 1, transport, b.panel(transport).await));
        }
    }
    all
}

#[tokio::test]
async fn four_tabs_race_at_once_over_http2_through_nginx_in_the_browser() {
    let Some(deployment) = Deployment::start("edge-h2", &[]).await else {
        return;
    };
    // Chromium trusts the certificate the deployment made, and no other it would refuse.
    let options = Options {
        args: vec![format!(
            "--ignore-certificate-errors-spki-list={}",
            deployment.spki_sha256()
        )],
        ..Options::default()
    };
    let base = format!("https://127.0.0.1:{TLS_PORT}/");
    // Every check is inside: nothing to skip besides when the browser is missing.
    let _ran = with_browser_at(&base, "edge-h2", options, async |b| {
        let (count, interval_ms) = (80, 250);
        let tabs = open_tabs(b).await;
        for tab in &tabs {
            start_race(b, tab, count, interval_ms).await;
        }
        // At once: the instances hold every tab's stream of every transport together.
        let all = TABS as f64;
        wait_until(SOON, "every stream of every tab open at once", || async {
            let mut open = true;
            for transport in TRANSPORTS {
                open &= open_streams(&deployment, &[transport]).await == all;
            }
            open
        })
        .await;
        for (tab, transport, p) in panels(b, &tabs).await {
            assert_eq!(p.state, "streaming", "tab {tab}, {transport}: {p:?}");
            assert!(!p.waiting, "tab {tab}, {transport}: {p:?}");
            let protocol = match transport {
                "ws" => "http/1.1 upgrade", // a WebSocket has no Resource Timing entry
                "wt" => "h3",               // straight to the instance's UDP port
                _ => "h2",
            };
            assert_eq!(p.protocol, protocol, "tab {tab}, {transport}: {p:?}");
        }
        b.screenshot("edge-h2-racing").await;

        // Each tab's each panel gets exactly 0..count, and once its stream has ended the
        // panel reads the protocol from the stream's own timing entry: still h2.
        for (i, tab) in tabs.iter().enumerate() {
            b.switch_to(tab).await;
            for transport in TRANSPORTS {
                b.wait_done(transport, count, SOON * 2).await;
                if HTTP_TRANSPORTS.contains(&transport) {
                    b.wait_panel(transport, "the stream's own protocol", SOON, |p| {
                        p.protocol == "h2"
                    })
                    .await;
                }
            }
            b.assert_no_console_errors(&format!("racing in tab {}", i + 1))
                .await;
        }
        b.screenshot("edge-h2-done").await;
    })
    .await;
}

#[tokio::test]
async fn past_six_connections_a_tab_waits_over_http1_and_says_why_in_the_browser() {
    let Some(deployment) = Deployment::start("edge-h1", &[]).await else {
        return;
    };
    let base = format!("http://127.0.0.1:{PROXY_PORT}/");
    // Every check is inside: nothing to skip besides when the browser is missing.
    let _ran = with_browser_at(&base, "edge-h1", Options::default(), async |b| {
        // Long streams: they end when the test stops them.
        let (count, interval_ms) = (100_000, 100);
        let tabs = open_tabs(b).await;
        // Two tabs take the six connections.
        for tab in &tabs[..2] {
            start_race(b, tab, count, interval_ms).await;
            for transport in TRANSPORTS {
                b.wait_panel(transport, "its stream", SOON, |p| p.state == "streaming")
                    .await;
            }
        }
        for tab in &tabs[2..] {
            start_race(b, tab, count, interval_ms).await;
        }
        // Six HTTP streams on the server, every WebSocket: the cap is the browser's.
        wait_until(SOON, "six HTTP streams and every WebSocket", || async {
            open_streams(&deployment, &HTTP_TRANSPORTS).await == CONNECTIONS_PER_SITE
                && open_streams(&deployment, &["ws"]).await == TABS as f64
        })
        .await;

        // The third and fourth tabs' HTTP panels wait, and say why after two seconds.
        for tab in &tabs[2..] {
            b.switch_to(tab).await;
            for transport in HTTP_TRANSPORTS {
                let p = b
                    .wait_panel(transport, "the reason it waits", SOON, |p| p.waiting)
                    .await;
                assert_eq!(p.state, "connecting", "{p:?}");
                assert_eq!(p.protocol, "http/1.1", "{p:?}");
                for words in [
                    "over HTTP/1.1 a browser opens at most 6 connections per site",
                    "This page holds 0 open streams",
                    "HTTP/2 (the HTTPS listener of deploy/nginx.conf)",
                ] {
                    assert!(p.wait.contains(words), "{words:?} in {p:?}");
                }
            }
            let ws = b.panel("ws").await;
            assert_eq!(ws.state, "streaming", "{ws:?}");
            // WebTransport first asks `stream/wt` where its session is: an HTTP request too,
            // which waits for a connection like the streams, and the panel says so.
            let wt = b
                .wait_panel("wt", "the reason it waits", SOON, |p| p.waiting)
                .await;
            assert_eq!(wt.state, "connecting", "{wt:?}");
            assert!(wt.wait.contains("at most 6 connections per site"), "{wt:?}");
        }
        b.js(r#"document.getElementById("panels").scrollIntoView(); return null;"#)
            .await;
        b.screenshot("edge-h1-waiting").await;
        // The first two tabs stream, and say nothing of waiting.
        for (tab, transport, p) in panels(b, &tabs[..2]).await {
            assert_eq!(p.state, "streaming", "tab {tab}, {transport}: {p:?}");
            assert!(!p.waiting && p.wait.is_empty(), "tab {tab}: {p:?}");
            if HTTP_TRANSPORTS.contains(&transport) {
                assert_eq!(p.protocol, "http/1.1", "tab {tab}: {p:?}");
            }
        }

        // A tab stops: its three connections go to three waiting streams (which ones is the
        // browser's choice), whose panels stop explaining. Then the other tab stops, and
        // every stream of the last two tabs streams.
        let http_panels = |all: Vec<(usize, &'static str, Panel)>| {
            all.into_iter()
                .filter(|(_, transport, _)| HTTP_TRANSPORTS.contains(transport))
                .collect::<Vec<_>>()
        };
        for (stopped, streaming) in [(0, 3), (1, 6)] {
            b.switch_to(&tabs[stopped]).await;
            b.click("#stop").await;
            let start = std::time::Instant::now();
            loop {
                let waiting = http_panels(panels(b, &tabs[2..]).await);
                let started = waiting
                    .iter()
                    .filter(|(_, _, p)| p.state == "streaming")
                    .count();
                if started == streaming {
                    for (tab, transport, p) in &waiting {
                        let streams = p.state == "streaming";
                        assert_eq!(
                            streams,
                            !p.waiting,
                            "tab {}, {transport}: explains while waiting only: {p:?}",
                            tab + 2
                        );
                        assert_eq!(streams, p.wait.is_empty(), "{p:?}");
                    }
                    break;
                }
                assert!(
                    start.elapsed() < SOON,
                    "{streaming} of the waiting streams must stream once tab {} stopped: \
                     {waiting:#?}",
                    stopped + 1
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            wait_until(SOON, "six HTTP streams again", || async {
                open_streams(&deployment, &HTTP_TRANSPORTS).await == CONNECTIONS_PER_SITE
            })
            .await;
        }
        b.switch_to(&tabs[3]).await;
        b.screenshot("edge-h1-streaming").await;
        for tab in &tabs {
            b.switch_to(tab).await;
            b.click("#stop").await;
        }
    })
    .await;
}
