//! `GET /stream/ws`: real tokio-tungstenite clients (and one raw socket) against the server.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    time::timeout,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{
        Error as WsError, Message, client::IntoClientRequest, http::HeaderValue,
        protocol::CloseFrame,
    },
};

use crate::{
    helpers::{TestApp, spawn_app, spawn_app_with, wait_until},
    ws_protocol::{upgrade_on, upgrade_with},
};

pub(crate) type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single expected frame may take to arrive.
pub(crate) const FRAME_DEADLINE: Duration = Duration::from_secs(5);

fn ws_url(app: &TestApp, query: &str) -> String {
    format!("ws://{}/stream/ws{query}", app.addr)
}

async fn connect(app: &TestApp, query: &str) -> Client {
    connect_with(app, query, &[]).await.expect("upgrade")
}

/// Upgrades with extra request headers (`Origin`, `X-Forwarded-*`).
async fn connect_with(
    app: &TestApp,
    query: &str,
    headers: &[(&'static str, &str)],
) -> Result<Client, WsError> {
    let mut request = ws_url(app, query)
        .into_client_request()
        .expect("a valid URL");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_str(value).expect("header value"));
    }
    connect_async(request).await.map(|(ws, _)| ws)
}

/// An upgrade request over plain HTTP, to read a refusal's status, headers and JSON body.
async fn upgrade_request(app: &TestApp, query: &str, origin: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(&format!("/stream/ws{query}")))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    request.send().await.expect("request sent")
}

/// The next message, failing the test if none comes within [`FRAME_DEADLINE`].
pub(crate) async fn next(ws: &mut Client) -> Message {
    timeout(FRAME_DEADLINE, ws.next())
        .await
        .expect("a frame in time")
        .expect("the socket is open")
        .expect("a valid frame")
}

/// The next message, or `None` if none comes within `quiet`.
async fn next_within(ws: &mut Client, quiet: Duration) -> Option<Message> {
    match timeout(quiet, ws.next()).await {
        Ok(message) => Some(message.expect("the socket is open").expect("a valid frame")),
        Err(_) => None,
    }
}

/// Every text frame up to the close frame, and the close frame.
pub(crate) async fn read_to_close(ws: &mut Client) -> (Vec<String>, CloseFrame) {
    let mut texts = Vec::new();
    loop {
        match next(ws).await {
            Message::Text(text) => texts.push(text.to_string()),
            Message::Close(Some(frame)) => return (texts, frame),
            Message::Close(None) => panic!("a close frame without a code"),
            _ => {}
        }
    }
}

pub(crate) fn chunk_json(index: u64) -> String {
    format!(r#"{{"index":{index},"text":"Data Chunk {index}"}}"#)
}

fn index_of(text: &str) -> u64 {
    let json: serde_json::Value = serde_json::from_str(text).expect("a JSON frame");
    json["index"]
        .as_u64()
        .unwrap_or_else(|| panic!("not a chunk: {text}"))
}

pub(crate) fn assert_close(frame: &CloseFrame, code: u16, reason: &str) {
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (code, reason)
    );
}

async fn send_text(ws: &mut Client, text: &str) {
    ws.send(Message::text(text)).await.expect("sent");
}

pub(crate) async fn ws_metric(app: &TestApp, name: &str) -> f64 {
    app.metric(name, &[("transport", "ws")]).await
}

/// Waits until the server has counted one more stream ending with `outcome` and closed it.
pub(crate) async fn wait_for_outcome(app: &TestApp, outcome: &str, count: f64) {
    wait_until(Duration::from_secs(2), outcome, || async {
        crate::helpers::outcome(app, "ws", outcome).await == count
            && ws_metric(app, "chunkstream_open_streams").await == 0.0
    })
    .await;
}

#[tokio::test]
async fn each_chunk_is_one_json_text_frame_then_close_1000_done() {
    let app = spawn_app().await;
    let cases = [
        ("defaults", "", 0..10),
        ("a resume point", "?count=7&start=3", 3..7),
        ("nothing left", "?count=5&start=5", 5..5),
        ("empty", "?count=0", 0..0),
    ];
    for (case, query, range) in cases {
        let mut ws = connect(&app, query).await;
        let (texts, close) = read_to_close(&mut ws).await;
        let expected: Vec<String> = range.map(chunk_json).collect();
        assert_eq!(texts, expected, "{case}");
        assert_close(&close, 1000, "done");
        // After the close handshake the server ends the connection.
        assert!(
            timeout(FRAME_DEADLINE, ws.next())
                .await
                .expect(case)
                .is_none(),
            "{case}"
        );
    }
    wait_for_outcome(&app, "completed", 4.0).await;
    assert_eq!(ws_metric(&app, "chunkstream_chunks_sent_total").await, 14.0);
}

#[tokio::test]
async fn pause_holds_the_stream_and_resume_continues_with_the_next_index() {
    let app = spawn_app().await;
    let mut ws = connect(&app, "?count=100000&interval_ms=20").await;
    let Message::Text(first) = next(&mut ws).await else {
        panic!("a chunk first");
    };
    assert_eq!(first.as_str(), chunk_json(0));
    send_text(&mut ws, r#"{"action":"pause"}"#).await;
    // Frames already in flight may still come; then nothing, for many intervals.
    let mut last = 0;
    while let Some(message) = next_within(&mut ws, Duration::from_millis(500)).await {
        let Message::Text(text) = message else {
            panic!("unexpected {message:?}");
        };
        last = index_of(&text);
        assert!(last < 20, "the stream did not pause: chunk {last}");
    }
    // Paused for 2 s: about 100 chunks fall due meanwhile (20 ms apart).
    tokio::time::sleep(Duration::from_secs(2)).await;
    send_text(&mut ws, r#"{"action":"resume"}"#).await;
    let Message::Text(text) = next(&mut ws).await else {
        panic!("a chunk after resume");
    };
    assert_eq!(text.as_str(), chunk_json(last + 1));
    // Pacing is absolute: the next 50, overdue, arrive at once (paced, they would take 1 s).
    let resumed = Instant::now();
    for expected in last + 2..last + 52 {
        let Message::Text(text) = next(&mut ws).await else {
            panic!("a chunk");
        };
        assert_eq!(index_of(&text), expected);
    }
    let burst = resumed.elapsed();
    assert!(
        burst < Duration::from_millis(300),
        "overdue chunks took {burst:?}"
    );
    send_text(&mut ws, r#"{"action":"stop"}"#).await;
    let (_, close) = read_to_close(&mut ws).await;
    assert_close(&close, 1000, "stopped");
}

#[tokio::test]
async fn stop_closes_with_1000_and_counts_as_stopped() {
    let app = spawn_app().await;
    let mut ws = connect(&app, "?count=1000&interval_ms=100").await;
    assert_eq!(next(&mut ws).await, Message::text(chunk_json(0)));
    send_text(&mut ws, r#"{"action":"stop"}"#).await;
    let (texts, close) = read_to_close(&mut ws).await;
    assert!(texts.len() <= 1, "{texts:?}");
    assert_close(&close, 1000, "stopped");
    wait_for_outcome(&app, "stopped", 1.0).await;
}

#[tokio::test]
async fn bad_control_messages_get_an_error_frame_and_the_stream_goes_on() {
    let app = spawn_app().await;
    let mut ws = connect(&app, "?count=3&interval_ms=200").await;
    assert_eq!(next(&mut ws).await, Message::text(chunk_json(0)));
    let bad = [
        "not json",
        r#"{"action":"jump"}"#,
        r#"{"verb":"stop"}"#,
        r#""stop""#,
        // Exactly at the size limit: still a text message, so an error frame, not a close.
        &"x".repeat(4096),
    ];
    for message in bad {
        send_text(&mut ws, message).await;
    }
    let (texts, close) = read_to_close(&mut ws).await;
    let (errors, chunks): (Vec<_>, Vec<_>) = texts.iter().partition(|t| t.contains("error"));
    assert_eq!(chunks, [&chunk_json(1), &chunk_json(2)]);
    assert_eq!(errors.len(), bad.len(), "{errors:?}");
    for error in errors {
        let json: serde_json::Value = serde_json::from_str(error).expect("JSON");
        let object = json.as_object().expect("an object");
        assert_eq!(object.len(), 1, "{error}");
        assert!(object["error"].as_str().expect("text").contains("action"));
    }
    assert_close(&close, 1000, "done");
}

#[tokio::test]
async fn protocol_violations_close_with_their_codes() {
    let app = spawn_app().await;
    let cases = [
        ("binary frame", Message::binary(vec![1, 2, 3]), 1003),
        ("text over 4 KiB", Message::text("x".repeat(4097)), 1009),
        (
            "binary over 4 KiB",
            Message::binary(vec![0; 64 * 1024]),
            1009,
        ),
    ];
    for (case, message, code) in cases {
        let mut ws = connect(&app, "?count=1000&interval_ms=1000").await;
        assert_eq!(next(&mut ws).await, Message::text(chunk_json(0)), "{case}");
        ws.send(message).await.expect(case);
        let (texts, close) = read_to_close(&mut ws).await;
        assert!(texts.is_empty(), "{case}: {texts:?}");
        assert_eq!(u16::from(close.code), code, "{case}");
    }
    wait_for_outcome(&app, "protocol_error", 3.0).await;
}

#[tokio::test]
async fn client_pings_are_answered() {
    let app = spawn_app().await;
    let mut ws = connect(&app, "?count=2&interval_ms=60000").await;
    assert_eq!(next(&mut ws).await, Message::text(chunk_json(0)));
    ws.send(Message::Ping("are you there".into()))
        .await
        .expect("sent");
    assert_eq!(next(&mut ws).await, Message::Pong("are you there".into()));
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_dropped() {
    let app = spawn_app_with(|c| c.ws_ping_secs = 1).await;
    // A raw socket that does the handshake by hand and then never answers anything.
    let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
    let request = format!(
        "GET /stream/ws?count=10&interval_ms=60000 HTTP/1.1\r\nHost: {}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        app.addr
    );
    tcp.write_all(request.as_bytes()).await.expect("request");
    let started = Instant::now();
    // Everything the server sends until it drops the connection.
    let mut received = Vec::new();
    let read = async {
        let mut buf = [0; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    timeout(Duration::from_secs(5), read)
        .await
        .expect("the server drops a silent peer");
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(text.contains(&chunk_json(0)), "{text}");
    // An unmasked ping frame (FIN + opcode 9) with the server's payload.
    let ping = [&[0x89, 11][..], b"chunkstream"].concat();
    assert!(received.windows(ping.len()).any(|w| w == ping), "{text}");
    // Pinged after one silent second, dropped at the next tick without an answer.
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
    wait_for_outcome(&app, "protocol_error", 1.0).await;
}

#[tokio::test]
async fn bad_parameters_are_a_json_400_before_the_upgrade() {
    let app = spawn_app().await;
    let cases = [
        ("non-numeric count", "?count=ten", "`count`"),
        ("count over the maximum", "?count=100000001", "`count`"),
        (
            "interval over the maximum",
            "?interval_ms=60001",
            "`interval_ms`",
        ),
        ("start past count", "?count=3&start=4", "`start`"),
    ];
    for (case, query, needle) in cases {
        let resp = upgrade_request(&app, query, None).await;
        assert_eq!(resp.status(), 400, "{case}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/json; charset=utf-8",
            "{case}"
        );
        let body: serde_json::Value = resp.json().await.expect(case);
        let error = body["error"].as_str().unwrap_or_else(|| panic!("{case}"));
        assert!(error.contains(needle), "{case}: {error}");
        // A WebSocket client sees the refused handshake, not a socket.
        let refused = connect_with(&app, query, &[]).await;
        assert!(
            matches!(&refused, Err(WsError::Http(resp)) if resp.status() == 400),
            "{case}: {refused:?}"
        );
    }
    // A plain GET (no upgrade) is a JSON 400 too.
    let resp = app.get("/stream/ws").await;
    assert_eq!(resp.status(), 400);
    assert!(resp.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    assert_eq!(ws_metric(&app, "chunkstream_open_streams").await, 0.0);
}

#[tokio::test]
async fn origin_is_checked_against_cross_site_hijacking() {
    // The test client connects from 127.0.0.1: here, a trusted proxy.
    let app = spawn_app_with(|c| {
        c.allowed_origins = vec!["https://app.example.com".into()];
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let same = format!("http://{}", app.addr);
    // (case, request headers, upgraded?)
    type Case<'a> = (&'a str, Vec<(&'static str, &'a str)>, bool);
    let cases: [Case<'_>; 6] = [
        ("no Origin (not a browser)", vec![], true),
        ("same origin", vec![("Origin", &same)], true),
        (
            "allowed origin",
            vec![("Origin", "https://app.example.com")],
            true,
        ),
        (
            "same origin through a TLS proxy",
            vec![
                ("Origin", "https://stream.example.com"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "stream.example.com"),
            ],
            true,
        ),
        (
            "foreign origin",
            vec![("Origin", "https://evil.example")],
            false,
        ),
        ("null origin", vec![("Origin", "null")], false),
    ];
    for (case, headers, upgraded) in cases {
        let result = connect_with(&app, "?count=2", &headers).await;
        match (result, upgraded) {
            (Ok(mut ws), true) => {
                let (texts, close) = read_to_close(&mut ws).await;
                assert_eq!(texts, [chunk_json(0), chunk_json(1)], "{case}");
                assert_close(&close, 1000, "done");
            }
            (Err(WsError::Http(resp)), false) => assert_eq!(resp.status(), 403, "{case}"),
            (result, _) => panic!("{case}: {result:?}"),
        }
    }
    let resp = upgrade_request(&app, "", Some("https://evil.example")).await;
    assert_eq!(resp.status(), 403);
    let body: serde_json::Value = resp.json().await.unwrap();
    let error = body["error"].as_str().expect("an error");
    assert!(error.contains("`Origin`") && error.contains("https://evil.example"));
    assert_eq!(ws_metric(&app, "chunkstream_open_streams").await, 0.0);
}

#[tokio::test]
async fn forwarded_host_and_proto_from_an_untrusted_peer_are_ignored() {
    // No trusted proxy: a client cannot make a foreign origin its own by forging headers.
    let app = spawn_app().await;
    let forged = [
        ("Origin", "https://stream.example.com"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "stream.example.com"),
    ];
    match connect_with(&app, "?count=2", &forged).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 403),
        result => panic!("a forged forward was believed: {result:?}"),
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_ended_as_stalled_and_its_slot_freed() {
    let app = spawn_app_with(|c| {
        c.stall_timeout_secs = 1;
        c.max_streams_per_client = 1;
    })
    .await;
    // A small receive window, so that the server's writes block soon.
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("a receive buffer size");
    let mut tcp = socket.connect(app.addr).await.expect("connect");
    upgrade_on(&mut tcp, &app, "?count=100000000", &upgrade_with("", None)).await;
    // ...and never read.
    wait_until(Duration::from_secs(10), "the stream to stall", || async {
        crate::helpers::outcome(&app, "ws", "stalled").await == 1.0
            && ws_metric(&app, "chunkstream_open_streams").await == 0.0
    })
    .await;
    // Its connection was closed: what was buffered, then the end (or a reset).
    let drained = timeout(
        FRAME_DEADLINE,
        tokio::io::copy(&mut tcp, &mut tokio::io::sink()),
    )
    .await;
    assert!(drained.is_ok(), "the stalled connection is still open");
    // The client's one slot is free again.
    let mut ws = connect(&app, "?count=2").await;
    let (texts, close) = read_to_close(&mut ws).await;
    assert_eq!(texts, [chunk_json(0), chunk_json(1)]);
    assert_close(&close, 1000, "done");
    assert_eq!(
        crate::helpers::outcome(&app, "ws", "client_gone").await,
        0.0
    );
}

#[tokio::test]
async fn a_client_that_reads_slowly_but_steadily_is_not_stalled() {
    let app = spawn_app_with(|c| c.stall_timeout_secs = 1).await;
    let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
    upgrade_on(&mut tcp, &app, "?count=100000000", &upgrade_with("", None)).await;
    // Far slower than the server writes, so that its writes wait on every read; but each
    // read frees room often enough that the server's socket gets ahead within a second.
    let mut buf = vec![0; 256 * 1024];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let n = tcp.read(&mut buf).await.expect("the stream goes on");
        assert!(n > 0, "the server closed the stream");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(crate::helpers::outcome(&app, "ws", "stalled").await, 0.0);
    assert_eq!(ws_metric(&app, "chunkstream_open_streams").await, 1.0);
    drop(tcp);
    wait_for_outcome(&app, "client_gone", 1.0).await;
}

#[tokio::test]
async fn pauses_between_paced_chunks_are_not_stalls() {
    let app = spawn_app_with(|c| c.stall_timeout_secs = 1).await;
    // Nothing to send for longer than the stall timeout is not a stall.
    let mut ws = connect(&app, "?count=3&interval_ms=1500").await;
    let (texts, close) = read_to_close(&mut ws).await;
    assert_eq!(texts, [chunk_json(0), chunk_json(1), chunk_json(2)]);
    assert_close(&close, 1000, "done");
    wait_for_outcome(&app, "completed", 1.0).await;
    assert_eq!(crate::helpers::outcome(&app, "ws", "stalled").await, 0.0);
}

#[tokio::test]
async fn twenty_concurrent_clients_get_complete_ordered_streams() {
    let app = spawn_app().await;
    let url = ws_url(&app, "?count=5000");
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let (mut ws, _) = connect_async(url).await.expect("upgrade");
                read_to_close(&mut ws).await
            })
        })
        .collect();
    let expected: Vec<String> = (0..5000).map(chunk_json).collect();
    for client in clients {
        let (texts, close) = client.await.expect("client task");
        assert!(
            texts == expected,
            "a stream arrived incomplete or out of order"
        );
        assert_close(&close, 1000, "done");
    }
    wait_for_outcome(&app, "completed", 20.0).await;
    assert_eq!(
        ws_metric(&app, "chunkstream_chunks_sent_total").await,
        100_000.0
    );
}

#[tokio::test]
async fn shutdown_closes_a_paused_socket_with_1001_at_once() {
    let app = spawn_app().await;
    let mut ws = connect(&app, "?count=1000&interval_ms=1000").await;
    assert_eq!(next(&mut ws).await, Message::text(chunk_json(0)));
    send_text(&mut ws, r#"{"action":"pause"}"#).await;
    // Messages are handled in order: once this one is answered, the stream is paused.
    send_text(&mut ws, "?").await;
    let Message::Text(error) = next(&mut ws).await else {
        panic!("an error frame");
    };
    assert!(error.contains("error"), "{error}");
    let asked = Instant::now();
    let server = tokio::spawn(app.shutdown());
    let (texts, close) = read_to_close(&mut ws).await;
    assert!(texts.is_empty(), "{texts:?}");
    assert_close(&close, 1001, "server shutting down");
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "{:?}",
        asked.elapsed()
    );
    // Answering the close (tungstenite does, while reading on) lets the server finish.
    assert!(
        timeout(FRAME_DEADLINE, ws.next())
            .await
            .expect("the end")
            .is_none()
    );
    server.await.unwrap().expect("server stopped cleanly");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn spec_documents_the_websocket_route() {
    let app = spawn_app().await;
    let spec: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    let op = &spec["paths"]["/stream/ws"]["get"];
    let names: Vec<&str> = op["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["count", "interval_ms", "start"]);
    let responses = &op["responses"];
    let upgrade = &responses["101"];
    let closes = upgrade["description"].as_str().expect("a description");
    for code in ["1000", "1001", "1002", "1003", "1007", "1009"] {
        assert!(closes.contains(code), "{code}");
    }
    assert_eq!(
        upgrade["content"]["application/json"]["schema"]["items"]["$ref"],
        "#/components/schemas/Chunk"
    );
    for status in ["400", "403", "426", "429", "503"] {
        assert_eq!(
            responses[status]["content"]["application/json; charset=utf-8"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "{status}"
        );
    }
    assert!(responses["503"]["headers"]["RETRY-AFTER"].is_object());
    assert!(responses["429"]["headers"]["RETRY-AFTER"].is_object());
    // RFC 6455 §4.4: a 426 names the versions the server speaks.
    assert!(responses["426"]["headers"]["SEC-WEBSOCKET-VERSION"].is_object());
    assert!(upgrade["headers"]["SEC-WEBSOCKET-ACCEPT"].is_object());
    let description = op["description"].as_str().expect("a description");
    for needle in [r#"{"action":"pause"}"#, "1003", "1001", "Origin"] {
        assert!(description.contains(needle), "{needle}");
    }
}
