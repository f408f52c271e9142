//! WebTransport sessions against the server's limits and endings: refused past a limit,
//! closed as going away on shutdown, left open after the end for a client still reading,
//! freed within a second when the client leaves, stalled by QUIC's flow control, and the
//! certificate renewed while the server runs.

use std::time::{Duration, Instant};

use chunkstream::{config::Config, transport::wt::CLOSE_GRACE};
use wtransport::error::ConnectingError;

use crate::{
    helpers::{Binary, TestApp, outcome, spawn_app, spawn_app_with, wait_until},
    wt_client::{Closed, Connect, StreamEnd, WtSession},
};

/// `chunkstream_open_streams{transport="wt"}`.
async fn open_streams(app: &TestApp) -> f64 {
    app.metric("chunkstream_open_streams", &[("transport", "wt")])
        .await
}

#[tokio::test]
async fn past_a_limit_the_session_is_refused_and_counted_rejected() {
    // (limit, configuration, the status GET /stream/wt answers meanwhile)
    type Case = (&'static str, fn(&mut Config), u16);
    let cases: [Case; 2] = [
        ("--max-streams", |c| c.max_streams = 1, 503),
        (
            "--max-streams-per-client",
            |c| c.max_streams_per_client = 1,
            429,
        ),
    ];
    for (limit, configure, status) in cases {
        let app = spawn_app_with(configure).await;
        let connect = Connect::get(&app, "count=100&interval_ms=50").await;
        let digests = connect.digests();
        let mut held = WtSession::connect(&connect.url, &digests).await.unwrap();
        assert_eq!(held.index().await, Ok(0), "{limit}");
        // wtransport's client says a session was rejected, not with which status: the
        // status is what GET /stream/wt answers.
        let refused = WtSession::connect(&connect.url, &digests).await;
        assert!(
            matches!(refused, Err(ConnectingError::SessionRejected)),
            "{limit}: {:?}",
            refused.err()
        );
        assert_eq!(outcome(&app, "wt", "rejected").await, 1.0, "{limit}");
        let resp = app.get("/stream/wt?count=1").await;
        assert_eq!(resp.status(), status, "{limit}");
        assert_eq!(resp.headers()["retry-after"], "1", "{limit}");
        // The held session is untouched; closing it gives its room back.
        assert_eq!(held.index().await, Ok(1), "{limit}");
        drop(held);
        wait_until(Duration::from_secs(1), "room for a session", || async {
            open_streams(&app).await == 0.0
        })
        .await;
        let mut next = WtSession::connect(&connect.url, &digests).await.unwrap();
        assert_eq!(next.index().await, Ok(0), "{limit}");
    }
}

#[tokio::test]
async fn shutdown_closes_an_open_session_as_going_away_and_the_server_exits() {
    let app = spawn_app().await;
    let recorder = app.recorder.clone();
    let mut session = WtSession::open(&app, "count=1000&interval_ms=100")
        .await
        .expect("a session");
    assert_eq!(session.index().await, Ok(0));
    let asked = Instant::now();
    let server = tokio::spawn(app.shutdown());
    // The chunk stream is reset with 1, then the session closed with 1: resume elsewhere.
    let going_away = chunkstream::transport::wt::Code::GoingAway.stream();
    let (_, end) = session.rest().await;
    assert_eq!(end, StreamEnd::Reset(going_away.into_inner()));
    let closed = session.closed().await;
    assert_eq!(closed, Closed::Server(1, "server shutting down".into()));
    // A client that stays is given its grace (a second) to leave, well within the deadline.
    server.await.unwrap().expect("clean stop");
    let elapsed = asked.elapsed();
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    let all = crate::helpers::series(&recorder.render());
    let shutdown = "chunkstream_streams_total{transport=\"wt\",outcome=\"shutdown\"}";
    assert_eq!(all[shutdown], 1.0);
    assert_eq!(all["chunkstream_open_streams{transport=\"wt\"}"], 0.0);
}

#[tokio::test]
async fn a_finished_session_stays_open_for_a_client_still_reading_until_the_idle_timeout() {
    let idle = Duration::from_secs(3);
    let app = spawn_app_with(|c| c.idle_timeout_secs = idle.as_secs()).await;
    // Within the client's QUIC receive window: the server writes, finishes and has every
    // byte acknowledged before the client reads one.
    let count = 20_000;
    let opened = Instant::now();
    let mut session = WtSession::open(&app, &format!("count={count}"))
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "the stream to complete", || async {
        outcome(&app, "wt", "completed").await == 1.0
    })
    .await;
    // A client (a page) seconds behind its QUIC stack: a close now would discard what it
    // has not read. Past the grace a reset gets, every chunk is still there.
    tokio::time::sleep(CLOSE_GRACE + Duration::from_millis(500)).await;
    let (indexes, end) = session.rest().await;
    assert_eq!(end, StreamEnd::Finished);
    assert!(indexes.iter().copied().eq(0..count), "{}", indexes.len());
    // A client that stays still is closed, as done, once the idle timeout has passed.
    assert_eq!(session.closed().await, Closed::Server(0, "done".into()));
    assert!(opened.elapsed() >= idle, "{:?}", opened.elapsed());
    assert_eq!(open_streams(&app).await, 0.0);
}

#[tokio::test]
async fn a_finished_session_the_client_keeps_holds_its_room_until_it_closes() {
    let app = spawn_app_with(|c| c.max_streams_per_client = 1).await;
    let connect = Connect::get(&app, "count=3").await;
    let digests = connect.digests();
    let mut kept = WtSession::connect(&connect.url, &digests).await.unwrap();
    assert_eq!(kept.rest().await, (vec![0, 1, 2], StreamEnd::Finished));
    wait_until(Duration::from_secs(1), "the stream counted", || async {
        outcome(&app, "wt", "completed").await == 1.0
    })
    .await;
    // The stream is over and counted, but its session still holds a connection: no room
    // for another from this client until it closes.
    assert_eq!(open_streams(&app).await, 0.0);
    let refused = WtSession::connect(&connect.url, &digests).await;
    assert!(
        matches!(refused, Err(ConnectingError::SessionRejected)),
        "{:?}",
        refused.err()
    );
    assert_eq!(app.get("/stream/wt?count=1").await.status(), 429);
    drop(kept);
    wait_until(
        Duration::from_secs(1),
        "room once the session closed",
        || async { app.get("/stream/wt?count=1").await.status() == 200 },
    )
    .await;
    let mut next = WtSession::connect(&connect.url, &digests).await.unwrap();
    assert_eq!(next.index().await, Ok(0));
}

#[tokio::test]
async fn shutdown_closes_a_finished_session_the_client_keeps_as_going_away() {
    let app = spawn_app().await;
    let mut session = WtSession::open(&app, "count=3").await.expect("a session");
    assert_eq!(session.rest().await, (vec![0, 1, 2], StreamEnd::Finished));
    let asked = Instant::now();
    let server = tokio::spawn(app.shutdown());
    // The idle timeout (60 s) does not hold the server: the client gets the grace, then
    // the close says going away (it may not have read everything its stack received).
    let closed = session.closed().await;
    assert_eq!(closed, Closed::Server(1, "server shutting down".into()));
    server.await.unwrap().expect("clean stop");
    let elapsed = asked.elapsed();
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn a_client_that_closes_or_stops_the_chunk_stream_frees_its_slot_within_a_second() {
    let app = spawn_app().await;
    for (i, how) in ["close", "stop"].into_iter().enumerate() {
        // Flat out: only the client's leaving can stop it.
        let mut session = WtSession::open(&app, "count=100000000").await.unwrap();
        assert_eq!(session.index().await, Ok(0), "{how}");
        assert_eq!(open_streams(&app).await, 1.0, "{how}");
        let left = Instant::now();
        match how {
            "close" => drop(session),
            _ => session.stop_chunks(7).await,
        }
        wait_until(Duration::from_secs(1), "the session to end", || async {
            open_streams(&app).await == 0.0
        })
        .await;
        assert!(left.elapsed() < Duration::from_secs(1), "{how}");
        assert_eq!(outcome(&app, "wt", "client_gone").await, (i + 1) as f64);
        let labels = [("transport", "wt")];
        let sent = app.metric("chunkstream_chunks_sent_total", &labels).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let later = app.metric("chunkstream_chunks_sent_total", &labels).await;
        assert_eq!(later, sent, "{how}: chunks still being sent");
    }
}

#[tokio::test]
async fn a_client_that_never_reads_is_stalled_by_flow_control() {
    let app = spawn_app_with(|c| c.stall_timeout_secs = 1).await;
    let session = WtSession::open(&app, "count=100000000").await.unwrap();
    // The client reads nothing: QUIC's flow control holds the writer, then the stall timeout.
    let closed = session.closed().await;
    assert_eq!(closed, Closed::Server(3, "stalled".into()));
    wait_until(Duration::from_secs(1), "counted stalled", || async {
        outcome(&app, "wt", "stalled").await == 1.0
    })
    .await;
    assert_eq!(open_streams(&app).await, 0.0);
    // A paced stream whose pauses pass the stall timeout is not stalled.
    let mut paced = WtSession::open(&app, "count=2&interval_ms=1200")
        .await
        .unwrap();
    assert_eq!(paced.rest().await, (vec![0, 1], StreamEnd::Finished));
    assert_eq!(outcome(&app, "wt", "stalled").await, 1.0);
}

#[tokio::test]
async fn the_certificate_is_renewed_and_new_sessions_use_the_new_hash() {
    // Renewed halfway: every second.
    let app = spawn_app_with(|c| c.cert_validity = Duration::from_secs(2)).await;
    let first = Connect::get(&app, "count=50&interval_ms=50").await;
    let old = first.digests();
    let mut before = WtSession::connect(&first.url, &old).await.unwrap();
    assert_eq!(before.index().await, Ok(0));
    let renewing = Instant::now();
    let renewed = loop {
        let now = Connect::get(&app, "count=3").await.digests();
        if now != old {
            break now;
        }
        assert!(
            renewing.elapsed() < Duration::from_secs(3),
            "no new hash in 3 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The old hash no longer opens a session.
    let stale = WtSession::connect(&first.url, &old).await;
    assert!(stale.is_err(), "a session with the old hash");
    let mut after = WtSession::connect(
        &first.url.replace("count=50&interval_ms=50", "count=3"),
        &renewed,
    )
    .await
    .expect("a session with the new hash");
    assert_eq!(after.rest().await, (vec![0, 1, 2], StreamEnd::Finished));
    // The session accepted before goes on with the certificate it was accepted with.
    assert_eq!(before.index().await, Ok(1));
}

#[tokio::test]
async fn the_binary_serves_sessions_on_the_tcp_ports_number_by_default() {
    let server = Binary::start(&["--addr", "127.0.0.1:0"], &[], None).await;
    let port: u16 = server.addr().rsplit_once(':').unwrap().1.parse().unwrap();
    let resp = reqwest::get(format!("{}/stream/wt?count=2", server.base))
        .await
        .unwrap();
    let connect: Connect = resp.json().await.unwrap();
    let url = format!("https://127.0.0.1:{port}/stream/wt?count=2&interval_ms=0&start=0");
    assert_eq!(connect.url, url);
    let mut session = WtSession::connect(&connect.url, &connect.digests())
        .await
        .expect("a session on UDP at the TCP port's number");
    assert_eq!(session.rest().await, (vec![0, 1], StreamEnd::Finished));
    let log = server.log();
    assert!(
        log.contains(&format!("https://127.0.0.1:{port}/stream/wt")),
        "{log}"
    );
}
