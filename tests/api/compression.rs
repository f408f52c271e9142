//! HTTP streams compressed as the client asks: gzip decodes to the identity body byte for
//! byte, each paced chunk decodes on arrival, the client's weights and `--compression off`
//! are obeyed, and the bytes on the wire fall and are counted. Static files (the page, the
//! docs, the OpenAPI documents) go out in gzip too when asked.

use std::time::{Duration, Instant};

use chunkstream::{config::Compression, streams::Transport};
use chunkstream_zlib::Inflate;
use futures_util::StreamExt;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// The HTTP transports (the WebSocket negotiates its own compression).
const HTTP: [Transport; 3] = [Transport::Text, Transport::Sse, Transport::Jsonl];

/// GET `path` with `Accept-Encoding: accept` (none if empty): the response, undecoded.
async fn get(app: &TestApp, path: &str, accept: &str) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if !accept.is_empty() {
        request = request.header("accept-encoding", accept);
    }
    request.send().await.expect("a response")
}

/// A gzip body's decoder, fed as bytes arrive: what has arrived so far, decoded.
pub struct Gunzip {
    header: Vec<u8>,
    inflate: Inflate,
    plain: Vec<u8>,
}

impl Gunzip {
    pub fn new() -> Self {
        Self {
            header: Vec::new(),
            inflate: Inflate::raw(15).expect("an inflater"),
            plain: Vec::new(),
        }
    }

    /// Feeds `bytes`; returns everything decoded so far.
    pub fn feed(&mut self, mut bytes: &[u8]) -> &[u8] {
        // The 10-byte gzip header (no optional fields: the server writes none), then raw
        // deflate, then an 8-byte trailer that the inflater stops before.
        if self.header.len() < 10 {
            let take = (10 - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.header.len() == 10 {
                assert_eq!(&self.header[..4], [0x1f, 0x8b, 8, 0], "a plain gzip header");
            }
        }
        if !bytes.is_empty() {
            self.inflate
                .inflate(bytes, &mut self.plain, usize::MAX)
                .expect("valid gzip data");
        }
        &self.plain
    }
}

#[tokio::test]
async fn every_http_stream_in_gzip_decodes_to_its_identity_body() {
    let app = spawn_app().await;
    for transport in HTTP {
        for query in [
            "count=10",
            "count=5000",
            "count=3&interval_ms=20",
            "count=0",
        ] {
            let path = format!("{}?{query}", transport.path());
            let identity = get(&app, &path, "").await;
            assert!(identity.headers().get("content-encoding").is_none());
            assert_eq!(identity.headers()["vary"], "accept-encoding", "{path}");
            let identity = identity.bytes().await.expect("a body");

            let gzip = get(&app, &path, "gzip, deflate, br, zstd").await;
            assert_eq!(gzip.status(), 200, "{path}");
            assert_eq!(gzip.headers()["content-encoding"], "gzip", "{path}");
            assert_eq!(gzip.headers()["vary"], "accept-encoding", "{path}");
            let wire = gzip.bytes().await.expect("a body");
            let mut decoder = Gunzip::new();
            assert_eq!(decoder.feed(&wire), &identity[..], "{path}");
            // The stream's end: the trailer's length is the identity body's.
            let length = u32::from_le_bytes(wire[wire.len() - 4..].try_into().unwrap());
            assert_eq!(length as usize, identity.len(), "{path}");
        }
    }
}

#[tokio::test]
async fn a_paced_gzip_stream_decodes_each_chunk_as_it_arrives() {
    let app = spawn_app().await;
    let interval = Duration::from_millis(400);
    for transport in HTTP {
        let path = format!(
            "{}?count=3&interval_ms={}",
            transport.path(),
            interval.as_millis()
        );
        let resp = get(&app, &path, "gzip").await;
        assert_eq!(resp.headers()["content-encoding"], "gzip");
        let started = Instant::now();
        let mut body = resp.bytes_stream();
        let mut decoder = Gunzip::new();
        let needle = match transport {
            Transport::Text => "Data Chunk 0\n",
            Transport::Sse => "id: 0\n\n",
            _ => "\"Data Chunk 0\"}\n",
        };
        loop {
            let frame = body.next().await.expect("more body").expect("a frame");
            let plain = String::from_utf8_lossy(decoder.feed(&frame)).into_owned();
            if plain.contains(needle) {
                assert!(
                    !plain.contains("Chunk 1"),
                    "{path}: chunk 0 came with chunk 1"
                );
                break;
            }
        }
        // Chunk 0 decoded long before chunk 1 was even due.
        assert!(
            started.elapsed() < interval,
            "{path}: chunk 0 decoded after {:?}",
            started.elapsed()
        );
        while body.next().await.is_some() {}
    }
}

#[tokio::test]
async fn a_slow_gzip_stream_lets_its_compressor_go_between_events_and_loses_nothing() {
    // Paced at a second or more, a stream holds no compressor between events: each event's
    // compressor starts from the text before it, in the same deflate stream.
    let app = spawn_app().await;
    let path = "/stream/sse?count=3&interval_ms=1000&start=0";
    let resp = get(&app, path, "gzip").await;
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let mut body = resp.bytes_stream();
    let mut decoder = Gunzip::new();
    let mut frames = Vec::new();
    while let Some(frame) = body.next().await {
        let frame = frame.expect("a frame");
        let decoded = decoder.feed(&frame).len();
        frames.push((frame.len(), decoded));
    }
    let identity = get(&app, path, "").await.bytes().await.unwrap();
    // Each event decoded as its frame arrived (the last frame is the gzip trailer's).
    let decoded: Vec<usize> = frames.iter().map(|&(_, d)| d).collect();
    assert!(
        decoded
            .windows(2)
            .all(|w| w[0] < w[1] || w[1] == identity.len()),
        "{frames:?}"
    );
    assert_eq!(decoded.last(), Some(&identity.len()), "{frames:?}");
    // The second event refers back into the first across the let-go compressor.
    assert!(frames[1].0 * 2 < frames[0].0, "{frames:?}");
}

#[tokio::test]
async fn the_clients_weights_decide_and_identity_is_the_fallback() {
    let app = spawn_app().await;
    // (Accept-Encoding, compressed)
    for (accept, compressed) in [
        ("", false),
        ("identity", false),
        ("gzip;q=0", false),
        ("gzip;q=0, identity", false),
        ("br, zstd", false),
        ("gzip;q=0.5, identity;q=1", false),
        ("*;q=0", false),
        ("gzip;q=0, identity;q=0", false),
        ("*", true),
        ("identity;q=0.5, gzip", true),
        ("GZip", true),
    ] {
        for transport in HTTP {
            let resp = get(&app, &format!("{}?count=2", transport.path()), accept).await;
            assert_eq!(resp.status(), 200, "{accept:?}");
            let encoding = resp.headers().get("content-encoding");
            assert_eq!(
                encoding.is_some(),
                compressed,
                "{accept:?} on {transport:?}"
            );
            assert_eq!(resp.headers()["vary"], "accept-encoding");
        }
    }
    // HEAD tells what a GET would get, the encoding included.
    let head = app
        .client
        .head(app.url("/stream/sse"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("a response");
    assert_eq!(head.headers()["content-encoding"], "gzip");
    assert_eq!(head.bytes().await.expect("no body").len(), 0);
}

#[tokio::test]
async fn compression_off_sends_identity_whatever_is_asked() {
    let app = spawn_app_with(|c| c.compression = Compression::Off).await;
    for transport in HTTP {
        let resp = get(&app, &format!("{}?count=2", transport.path()), "gzip").await;
        assert!(resp.headers().get("content-encoding").is_none());
        assert_eq!(resp.headers()["vary"], "accept-encoding");
    }
}

/// `chunkstream_bytes_sent_total{transport, encoding}`.
async fn bytes_sent(app: &TestApp, transport: Transport, encoding: &str) -> f64 {
    app.metric(
        "chunkstream_bytes_sent_total",
        &[("transport", transport.as_str()), ("encoding", encoding)],
    )
    .await
}

#[tokio::test]
async fn compressed_bytes_are_counted_and_meet_the_targets() {
    let app = spawn_app().await;
    // A paced SSE stream: each event flushed alone, the compressor's context carried over.
    // (interval 1 ms: paced, so each event is its own frame, yet quick.)
    let paced = "/stream/sse?count=300&start=100&interval_ms=1";
    let identity = get(&app, paced, "").await.bytes().await.unwrap().len();
    let gzip = get(&app, paced, "gzip").await.bytes().await.unwrap().len();
    assert!(
        identity as f64 >= 2.5 * gzip as f64,
        "paced SSE: {identity} identity, {gzip} gzip"
    );
    assert_eq!(
        bytes_sent(&app, Transport::Sse, "identity").await,
        identity as f64
    );
    assert_eq!(bytes_sent(&app, Transport::Sse, "gzip").await, gzip as f64);
    // Flat out, whole frames compressed.
    for transport in HTTP {
        let path = format!("{}?count=200000", transport.path());
        let identity = get(&app, &path, "").await.bytes().await.unwrap().len();
        let gzip = get(&app, &path, "gzip").await.bytes().await.unwrap().len();
        assert!(
            identity as f64 >= 7.0 * gzip as f64,
            "{path}: {identity} identity, {gzip} gzip"
        );
    }
}

/// `body` of a finished gzip stream, decoded.
fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut decoder = Gunzip::new();
    decoder.feed(&body[..body.len() - 8]).to_vec()
}

#[tokio::test]
async fn static_files_go_out_in_gzip_when_asked_each_encoding_with_its_own_tag() {
    let app = spawn_app().await;
    let page = get(&app, "/docs/", "").await.text().await.unwrap();
    let bundle = page
        .split('"')
        .find(|s| s.starts_with("vendor/swagger-ui-bundle.js"))
        .expect("the page names Swagger UI's bundle");
    let paths = [
        "/".to_owned(),
        "/static/app.js".to_owned(),
        "/static/style.css".to_owned(),
        "/docs/".to_owned(),
        format!("/docs/{bundle}"),
        "/openapi.json".to_owned(),
        "/openapi-3.0.json".to_owned(),
    ];
    for path in paths {
        let identity = get(&app, &path, "").await;
        assert_eq!(identity.status(), 200, "{path}");
        assert!(
            identity.headers().get("content-encoding").is_none(),
            "{path}"
        );
        assert_eq!(identity.headers()["vary"], "accept-encoding", "{path}");
        let identity_tag = identity.headers()["etag"].clone();
        let identity = identity.bytes().await.unwrap();

        let gzip = get(&app, &path, "gzip, deflate, br, zstd").await;
        assert_eq!(gzip.headers()["content-encoding"], "gzip", "{path}");
        let tag = gzip.headers()["etag"].clone();
        assert_ne!(tag, identity_tag, "{path}: each encoding its own tag");
        let wire = gzip.bytes().await.unwrap();
        assert!(
            wire.len() < identity.len(),
            "{path}: {} of {}",
            wire.len(),
            identity.len()
        );
        assert_eq!(gunzip(&wire), identity, "{path}");

        // A second visit in gzip: nothing new to download.
        let again = app
            .client
            .get(app.url(&path))
            .header("accept-encoding", "gzip")
            .header("if-none-match", tag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()["etag"], tag, "{path}");
    }
}

#[tokio::test]
async fn static_files_stay_identity_with_compression_off() {
    let app = spawn_app_with(|c| c.compression = Compression::Off).await;
    for path in ["/", "/static/app.js", "/docs/", "/openapi.json"] {
        let resp = get(&app, path, "gzip").await;
        assert_eq!(resp.status(), 200, "{path}");
        assert!(resp.headers().get("content-encoding").is_none(), "{path}");
    }
}
