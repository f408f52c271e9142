//! Accessibility: axe-core, run in the page, finds no violation in any state a user sees —
//! idle, racing, done, an error shown — in the light and the dark colour scheme.
//!
//! axe-core is fetched from npm by `./scripts/test.sh` (one pinned version, into `target/`):
//! nothing of it is committed, and without it this test is skipped, saying why, unless `CI`
//! is set.

use super::TRANSPORTS;
use super::harness::{Browser, SOON, axe_core, with_browser};
use crate::helpers::spawn_app;

/// Runs axe on the page and fails the test with every violation it reports.
async fn assert_accessible(b: &Browser, axe: &str, state: &str) {
    let violations = b.axe_violations(axe).await;
    assert!(
        violations.is_empty(),
        "axe-core finds violations on the page {state}:\n{}",
        violations.join("\n")
    );
}

#[tokio::test]
async fn axe_finds_no_violation_on_the_page_idle_racing_or_failing() {
    let Some(axe) = axe_core() else {
        return;
    };
    let app = spawn_app().await;
    with_browser(&app, "a11y", async |b| {
        b.open_page().await;
        assert_accessible(b, &axe, "idle").await;

        // Racing: every panel streaming, the chart drawing, the chunk lists scrolling.
        let count = 60;
        b.choose("race", count, 100).await;
        b.click("#start").await;
        for transport in TRANSPORTS {
            b.wait_panel(transport, "a race under way", SOON, |p| p.count >= 10)
                .await;
        }
        assert_accessible(b, &axe, "racing").await;
        for transport in TRANSPORTS {
            b.wait_panel(transport, "the end of the race", SOON, |p| {
                p.state == "done"
            })
            .await;
        }
        b.emulate_media(&[("prefers-color-scheme", "dark")]).await;
        assert_accessible(b, &axe, "done, in the dark scheme").await;
        b.emulate_media(&[]).await;

        // Every panel showing the server's error message.
        b.choose("race", 100_000_001, 0).await;
        b.click("#start").await;
        for transport in TRANSPORTS {
            b.wait_panel(transport, "the error", SOON, |p| p.state == "error")
                .await;
        }
        assert_accessible(b, &axe, "showing errors").await;
    })
    .await;
}
