//! `GET /stream`: exact bodies, edges, liveness, and a client that goes away.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::helpers::{outcome, spawn_app};

fn lines(range: std::ops::Range<u64>) -> String {
    range.map(|i| format!("Data Chunk {i}\n")).collect()
}

#[tokio::test]
async fn default_stream_is_the_flask_example() {
    let app = spawn_app().await;
    let resp = app.get("/stream").await;
    assert_eq!(resp.status(), 200);
    let headers = resp.headers();
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(headers["transfer-encoding"], "chunked");
    assert!(headers.get("content-length").is_none());
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(headers["x-accel-buffering"], "no");
    assert_eq!(resp.text().await.unwrap(), lines(0..10));
}

#[tokio::test]
async fn start_and_count_edges() {
    let app = spawn_app().await;
    let cases = [
        ("count zero", "/stream?count=0", String::new()),
        (
            "start equals count",
            "/stream?count=5&start=5",
            String::new(),
        ),
        ("start inside", "/stream?count=5&start=3", lines(3..5)),
        ("count one", "/stream?count=1", lines(0..1)),
        (
            "count at the maximum",
            "/stream?count=100000000&start=99999998",
            lines(99_999_998..100_000_000),
        ),
        (
            "interval at the maximum, one chunk",
            "/stream?count=1&interval_ms=60000",
            lines(0..1),
        ),
    ];
    for (name, path, expected) in cases {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(resp.text().await.unwrap(), expected, "{name}");
    }
}

#[tokio::test]
async fn a_large_stream_arrives_complete_and_in_order() {
    let app = spawn_app().await;
    let body = app.get("/stream?count=200000").await.text().await.unwrap();
    assert_eq!(body, lines(0..200_000));
    assert_eq!(outcome(&app, "text", "completed").await, 1.0);
}

#[tokio::test]
async fn lines_are_written_as_they_are_made() {
    let app = spawn_app().await;
    let sent = Instant::now();
    let resp = app.get("/stream?count=3&interval_ms=300").await;
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let mut arrivals = Vec::new();
    while let Some(bytes) = body.next().await {
        text.push_str(std::str::from_utf8(&bytes.unwrap()).unwrap());
        while arrivals.len() < text.matches('\n').count() {
            arrivals.push(sent.elapsed());
        }
    }
    assert_eq!(text, lines(0..3));
    assert_eq!(arrivals.len(), 3);
    // The first line reaches the client long before the last is even made (600 ms later on
    // the generator's schedule): nothing waits for the end. (Bounds leave room for a busy
    // machine: a buffered response would show no gap at all.)
    assert!(
        arrivals[2] - arrivals[0] >= Duration::from_millis(400),
        "{arrivals:?}"
    );
    assert!(
        arrivals[1] > arrivals[0] && arrivals[2] > arrivals[1],
        "{arrivals:?}"
    );
}
