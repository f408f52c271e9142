//! `GET /stream/sse`: events, resume with `Last-Event-ID`, 204, keep-alive, disconnects.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::{
    eventsource::{Item, Parser, chunk_indexes, events, read_until},
    helpers::{TestApp, spawn_app, spawn_app_with},
};

/// Every item of a whole event stream, parsed as the spec says.
async fn read_all(resp: reqwest::Response) -> Vec<Item> {
    read_until(
        Parser::default(),
        resp.bytes_stream(),
        Instant::now(),
        |_| false,
    )
    .await
}

/// Opens `/stream/sse{query}`, with `Last-Event-ID` when given.
async fn open(app: &TestApp, query: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url(&format!("/stream/sse{query}")));
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    req.send().await.expect("request sent")
}

#[tokio::test]
async fn full_stream_is_retry_chunks_and_end() {
    let app = spawn_app().await;
    let resp = open(&app, "?count=5", None).await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["content-type"], "text/event-stream");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-accel-buffering"], "no");
    assert!(h.get("content-encoding").is_none());
    let body = resp.text().await.unwrap();
    // `retry:` opens the first event's block; `id:` closes each event.
    assert!(
        body.starts_with(
            "retry: 1000\nevent: chunk\ndata: {\"index\":0,\"text\":\"Data Chunk 0\"}\nid: 0\n\n"
        ),
        "{body}"
    );
    assert!(
        body.contains("\n\nevent: chunk\ndata: {\"index\":3,\"text\":\"Data Chunk 3\"}\nid: 3\n\n")
    );
    assert!(
        body.ends_with("id: 4\n\nevent: end\ndata: {\"count\":5}\n\n"),
        "{body}"
    );
    let items = read_until(
        Parser::default(),
        futures_util::stream::iter([Ok::<_, ()>(body)]),
        Instant::now(),
        |_| false,
    )
    .await;
    assert_eq!(items[0], Item::Retry(1000));
    assert_eq!(chunk_indexes(&items), (0..5).collect::<Vec<_>>());
    let all = events(&items);
    let end = all.last().unwrap();
    assert_eq!(end.event, "end");
    assert_eq!(end.data, r#"{"count":5}"#);
    assert_eq!(all.len(), 6);
}

#[tokio::test]
async fn retry_hint_is_configurable() {
    let app = spawn_app_with(|c| c.sse_retry_ms = 250).await;
    let body = open(&app, "?count=1", None).await.text().await.unwrap();
    assert!(body.starts_with("retry: 250\nevent: chunk\n"), "{body}");
}

#[tokio::test]
async fn resume_after_a_cut_anywhere_loses_and_repeats_nothing() {
    let app = spawn_app().await;
    let count = 20;
    for cut_after in [1, 2, 7, 19, 20] {
        // Read `cut_after` events, drop the connection, reconnect as EventSource does.
        let resp = open(&app, &format!("?count={count}&interval_ms=5"), None).await;
        let items = read_until(
            Parser::default(),
            resp.bytes_stream(),
            Instant::now(),
            |items| chunk_indexes(items).len() == cut_after,
        )
        .await;
        let mut got = chunk_indexes(&items);
        let last_id = events(&items).last().unwrap().last_event_id.clone();
        let resp = open(
            &app,
            &format!("?count={count}&interval_ms=5"),
            Some(&last_id),
        )
        .await;
        if cut_after == count {
            assert_eq!(resp.status(), 204);
        } else {
            assert_eq!(resp.status(), 200);
            let items = read_all(resp).await;
            got.extend(chunk_indexes(&items));
            assert_eq!(events(&items).last().unwrap().event, "end");
        }
        assert_eq!(
            got,
            (0..count as u64).collect::<Vec<_>>(),
            "cut after {cut_after}"
        );
    }
}

#[tokio::test]
async fn last_event_id_wins_over_start() {
    let app = spawn_app().await;
    let resp = open(&app, "?count=10&start=8", Some("2")).await;
    let items = read_all(resp).await;
    assert_eq!(chunk_indexes(&items), (3..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn nothing_left_is_204_so_eventsource_stops() {
    let app = spawn_app().await;
    for (case, id) in [
        ("last chunk", "9"),
        ("past the end", "10"),
        ("far past the end", "123456"),
        ("leading zeros", "0009"),
        ("u64::MAX", "18446744073709551615"),
        ("past u64, still 20 digits", "99999999999999999999"),
    ] {
        let resp = open(&app, "?count=10", Some(id)).await;
        assert_eq!(resp.status(), 204, "{case}");
        assert_eq!(resp.text().await.unwrap(), "", "{case}");
    }
    // Without the header, an empty stream is still a 200 with its end event.
    let body = open(&app, "?count=0", None).await.text().await.unwrap();
    assert_eq!(body, "retry: 1000\nevent: end\ndata: {\"count\":0}\n\n");
}

#[tokio::test]
async fn a_cut_inside_an_event_never_resumes_after_it() {
    // A client that takes the id when it reads the line must not claim an event it did not
    // receive whole: cut anywhere before the event's last line feed, it resumes from the
    // event before.
    let app = spawn_app().await;
    let body = open(&app, "?count=6", None).await.bytes().await.unwrap();
    let block = b"event: chunk\ndata: {\"index\":4,\"text\":\"Data Chunk 4\"}\nid: 4\n\n";
    let start = body
        .windows(block.len())
        .position(|w| w == block)
        .expect("event 4 in the body");
    let end = start + block.len();
    for cut in start..=end {
        let resume_id = |mut parser: Parser| {
            parser.feed(&body[..cut], Duration::ZERO);
            parser.resume_id().to_owned()
        };
        let at = cut - start;
        let strict = if cut == end { "4" } else { "3" };
        assert_eq!(resume_id(Parser::default()), strict, "cut at byte {at}");
        // The lenient window is the one byte between `id: 4`'s line feed and the blank line.
        let lenient = if cut >= end - 1 { "4" } else { "3" };
        assert_eq!(resume_id(Parser::lenient()), lenient, "cut at byte {at}");
    }
}

#[tokio::test]
async fn malformed_last_event_id_is_a_400_naming_the_header() {
    let app = spawn_app().await;
    let cases: [(&str, &[u8]); 9] = [
        ("non-numeric", b"abc"),
        ("negative", b"-1"),
        ("fraction", b"1.5"),
        ("trailing junk", b"12x"),
        ("empty", b""),
        ("21 digits", b"123456789012345678901"),
        ("inner tab", b"1\t2"),
        ("not ASCII", "é".as_bytes()),
        ("obs-text byte", b"\xff"),
    ];
    for (case, value) in cases {
        let value = reqwest::header::HeaderValue::from_bytes(value).expect(case);
        let resp = app
            .client
            .get(app.url("/stream/sse"))
            .header("Last-Event-ID", value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{case}");
        let body: serde_json::Value = resp.json().await.expect(case);
        let error = body["error"].as_str().expect(case);
        assert!(error.contains("Last-Event-ID"), "{case}: {error}");
    }
}

#[tokio::test]
async fn control_bytes_in_last_event_id_are_refused() {
    // CR, LF and NUL cannot be in a header value: hyper refuses the request with a 400
    // before it reaches the application (so the body is empty, not JSON).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    for value in [&b"1\x002"[..], b"1\r\n 2", b"1\x01"] {
        let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let mut req = b"GET /stream/sse HTTP/1.1\r\nHost: x\r\nLast-Event-ID: ".to_vec();
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        tcp.write_all(&req).await.unwrap();
        let mut resp = Vec::new();
        tcp.read_to_end(&mut resp).await.unwrap();
        assert!(resp.starts_with(b"HTTP/1.1 400 "), "{value:?}");
    }
}

#[tokio::test]
async fn keep_alive_comes_after_each_second_of_silence_and_a_chunk_resets_it() {
    // (Frames' unit tests pin the rule on paused time; this is the real server and socket.)
    let app = spawn_app_with(|c| c.sse_keep_alive_secs = 1).await;
    // Chunks 2.5 s apart: keep-alives about 1 s and 2 s after each chunk, never 1 s after
    // an earlier keep-alive when a chunk came in between.
    let opened = Instant::now();
    let resp = open(&app, "?count=3&interval_ms=2500", None).await;
    // Read as httpx-sse and fetch-event-source do, which dispatch a message for every block
    // without data: neither `retry:` nor a keep-alive comment may stand in a block of its own.
    let items = read_until(Parser::lenient(), resp.bytes_stream(), opened, |_| false).await;
    let names: Vec<&str> = events(&items).iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["chunk", "chunk", "chunk", "end"], "{items:?}");
    assert_eq!(chunk_indexes(&items), vec![0, 1, 2]);
    let mut last_sent = Duration::ZERO;
    let mut per_silence = vec![0];
    for item in &items {
        match item {
            Item::Comment(text, at) => {
                assert_eq!(text, "keep-alive");
                let silence = *at - last_sent;
                assert!(
                    silence >= Duration::from_millis(900),
                    "after {silence:?}: {items:?}"
                );
                *per_silence.last_mut().unwrap() += 1;
                last_sent = *at;
            }
            Item::Event(event) => {
                last_sent = event.at;
                per_silence.push(0);
            }
            Item::Retry(_) => {}
        }
    }
    // Two in each 2.5 s silence, none after the last chunk (the end follows it).
    assert_eq!(per_silence, [0, 2, 2, 0, 0], "{items:?}");
}

#[tokio::test]
async fn a_stream_cut_by_shutdown_resumes_on_the_next_server_with_no_gap() {
    let mut first = Some(spawn_app().await);
    let query = "?count=30&interval_ms=20";
    let opened = Instant::now();
    let resp = open(first.as_ref().unwrap(), query, None).await;
    let mut body = resp.bytes_stream();
    let mut parser = crate::eventsource::Parser::default();
    let mut items = Vec::new();
    // Shut the server down mid-stream, once a few chunks have arrived.
    let mut server = None;
    while let Some(bytes) = body.next().await {
        items.extend(parser.feed(&bytes.expect("a clean end"), opened.elapsed()));
        if chunk_indexes(&items).len() >= 5
            && let Some(app) = first.take()
        {
            server = Some(tokio::spawn(app.shutdown()));
        }
    }
    server
        .expect("shut down")
        .await
        .unwrap()
        .expect("clean stop");
    let mut got = chunk_indexes(&items);
    assert!(got.len() < 30, "the shutdown cut the stream");
    assert!(
        events(&items).iter().all(|e| e.event != "end"),
        "a shutdown must not send `end`: EventSource would not reconnect"
    );
    // The browser reconnects — here, to a new server — with the last id it saw.
    let second = spawn_app().await;
    let last_id = events(&items).last().unwrap().last_event_id.clone();
    let resp = open(&second, query, Some(&last_id)).await;
    let items = read_all(resp).await;
    got.extend(chunk_indexes(&items));
    assert_eq!(got, (0..30).collect::<Vec<_>>());
    assert_eq!(events(&items).last().unwrap().event, "end");
}
