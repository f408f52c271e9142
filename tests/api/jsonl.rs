//! `GET /stream/jsonl`: JSON Lines byte for byte, edges, pacing, bad input, a client that
//! goes away.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::helpers::{outcome, spawn_app};

/// The body of chunks `range`, as the contract writes it.
fn lines(range: std::ops::Range<u64>) -> String {
    range
        .map(|i| format!("{{\"index\":{i},\"text\":\"Data Chunk {i}\"}}\n"))
        .collect()
}

/// Every line of `body` parsed as JSON: its index, checking its text.
fn indexes(body: &str) -> Vec<u64> {
    assert!(body.is_empty() || body.ends_with('\n'), "{body:?}");
    body.lines()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let index = json["index"].as_u64().expect("an index");
            assert_eq!(json["text"], format!("Data Chunk {index}"), "{line}");
            assert_eq!(json.as_object().map(|o| o.len()), Some(2), "{line}");
            index
        })
        .collect()
}

#[tokio::test]
async fn each_chunk_is_one_json_line_and_nothing_else() {
    let app = spawn_app().await;
    let resp = app.get("/stream/jsonl").await;
    assert_eq!(resp.status(), 200);
    let headers = resp.headers();
    assert_eq!(headers["content-type"], "application/jsonl");
    assert_eq!(headers["transfer-encoding"], "chunked");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert!(headers.get("content-encoding").is_none());
    let body = resp.text().await.unwrap();
    assert_eq!(body, lines(0..10));
    assert_eq!(indexes(&body), (0..10).collect::<Vec<_>>());
    assert_eq!(outcome(&app, "jsonl", "completed").await, 1.0);
    let sent = app
        .metric("chunkstream_chunks_sent_total", &[("transport", "jsonl")])
        .await;
    assert_eq!(sent, 10.0);
}

#[tokio::test]
async fn start_and_count_edges_and_a_large_stream() {
    let app = spawn_app().await;
    for (case, query, range) in [
        ("count zero", "count=0", 0..0),
        ("start equals count", "count=5&start=5", 5..5),
        ("resumed inside", "count=5&start=3", 3..5),
        (
            "at the maximum",
            "count=100000000&start=99999998",
            99_999_998..100_000_000,
        ),
        ("many lines", "count=200000", 0..200_000),
    ] {
        let body = app
            .get(&format!("/stream/jsonl?{query}"))
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(indexes(&body), range.clone().collect::<Vec<_>>(), "{case}");
        assert_eq!(body, lines(range), "{case}");
    }
}

#[tokio::test]
async fn lines_are_written_as_they_are_made() {
    let app = spawn_app().await;
    let sent = Instant::now();
    let resp = app.get("/stream/jsonl?count=3&interval_ms=300").await;
    let mut body = resp.bytes_stream();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(frame) = body.next().await {
        text.push_str(std::str::from_utf8(&frame.unwrap()).unwrap());
        while arrivals.len() < text.lines().count() {
            arrivals.push(sent.elapsed());
        }
    }
    assert_eq!(indexes(&text), [0, 1, 2]);
    // The first line at once, then one every 300 ms: not held back until the end.
    assert!(arrivals[0] < Duration::from_millis(250), "{arrivals:?}");
    assert!(
        arrivals[2] - arrivals[0] >= Duration::from_millis(550),
        "{arrivals:?}"
    );
}

#[tokio::test]
async fn bad_input_is_a_json_400_naming_the_parameter() {
    let app = spawn_app().await;
    for (query, name) in [
        ("count=-1", "`count`"),
        ("count=100000001", "`count`"),
        ("interval_ms=fast", "`interval_ms`"),
        ("count=3&start=4", "`start`"),
    ] {
        let resp = app.get(&format!("/stream/jsonl?{query}")).await;
        assert_eq!(resp.status(), 400, "{query}");
        let body: serde_json::Value = resp.json().await.unwrap();
        let error = body["error"].as_str().expect("an error");
        assert!(error.contains(name), "{query}: {error}");
    }
    assert_eq!(
        app.metric("chunkstream_open_streams", &[("transport", "jsonl")])
            .await,
        0.0
    );
}
