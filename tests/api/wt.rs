//! WebTransport (`/stream/wt`): wtransport's client against the real server on UDP.

use std::time::Duration;

use crate::{
    helpers::{outcome, spawn_app, wait_until},
    wt_client::{Closed, StreamEnd, WtSession},
};

#[tokio::test]
async fn smoke() {
    let app = spawn_app().await;
    let mut session = WtSession::open(&app, "count=5").await.expect("a session");
    let (indexes, end) = session.rest().await;
    assert_eq!(indexes, (0..5).collect::<Vec<_>>());
    assert_eq!(end, StreamEnd::Finished);
    assert_eq!(session.closed().await, Closed::Server(0, "done".into()));
    wait_until(Duration::from_secs(1), "counted", || async {
        outcome(&app, "wt", "completed").await == 1.0
    })
    .await;
}
