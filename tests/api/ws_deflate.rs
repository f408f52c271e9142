//! `GET /stream/ws` with permessage-deflate (RFC 7692): the negotiation, compressed streams
//! both ways, the limits on compressed messages, and python `websockets` as a client.
//!
//! tungstenite's client speaks no extension, so the client here is written by hand over a
//! raw socket, as a browser behaves: it decodes the server's messages with the context kept
//! from one to the next, and compresses its own each alone (as the answer asks).

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use chunkstream_zlib::{Deflate, Inflate, Wrapper};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    time::timeout,
};

use crate::{
    helpers::{
        TestApp, WS_ACCEPT, WS_HANDSHAKE, needs, read_head, send_head, spawn_app, spawn_app_with,
        wait_until,
    },
    ws::{FRAME_DEADLINE, chunk_json, wait_for_outcome},
};

/// What Chromium and python `websockets` offer.
const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";
/// What the server answers to it.
const ANSWER: &str = "permessage-deflate; client_no_context_takeover";
/// The end of a sync flush, left off each compressed message (§7.2.1).
const FLUSH_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Opcodes and flags of a frame's first byte.
const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xa;

/// One frame from the server.
#[derive(Debug)]
struct Frame {
    first: u8,
    payload: Vec<u8>,
    /// Its bytes on the wire, head included.
    wire: usize,
}

/// A message from the server, as the client reads it.
#[derive(Debug, PartialEq)]
enum Received {
    /// A text message, and whether it came compressed.
    Text(String, bool),
    /// A close frame's code and reason.
    Close(u16, String),
    /// A ping's payload.
    Ping(Vec<u8>),
    /// A pong's payload.
    Pong(Vec<u8>),
}

/// A WebSocket client by hand that speaks permessage-deflate as a browser does.
struct Client {
    tcp: TcpStream,
    /// The `Sec-WebSocket-Extensions` of the `101`.
    answer: Option<String>,
    /// The decoder of the server's messages, kept from message to message; there if agreed.
    inflater: Option<Inflate>,
}

/// A client frame: `first` (FIN, RSV and opcode bits), the length, and `payload` masked.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![first];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    let mask = [0x5c, 0x21, 0xe0, 0x07];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// `data` compressed alone, as a client does once asked for `client_no_context_takeover`.
fn deflated(data: &[u8]) -> Vec<u8> {
    let mut deflate = Deflate::new(Wrapper::Raw, 6, 15, 8).expect("a compressor");
    let mut out = Vec::new();
    deflate.flush(data, &mut out);
    out.truncate(out.len() - FLUSH_TAIL.len());
    out
}

impl Client {
    /// Upgrades to `/stream/ws{query}` with one `Sec-WebSocket-Extensions` line per offer.
    async fn open(app: &TestApp, query: &str, offers: &[&str]) -> Self {
        let tcp = TcpStream::connect(app.addr).await.expect("connect");
        Self::upgrade(tcp, app, query, offers).await
    }

    async fn upgrade(mut tcp: TcpStream, app: &TestApp, query: &str, offers: &[&str]) -> Self {
        tcp.set_nodelay(true).expect("nodelay");
        let mut headers = WS_HANDSHAKE.to_vec();
        headers.extend(
            offers
                .iter()
                .map(|offer| ("Sec-WebSocket-Extensions", *offer)),
        );
        let request_line = format!("GET /stream/ws{query} HTTP/1.1");
        send_head(&mut tcp, &app.addr.to_string(), &request_line, &headers).await;
        let head = read_head(&mut tcp).await;
        assert_eq!(head.status, 101, "{offers:?}: {head:?}");
        assert_eq!(head.headers["sec-websocket-accept"], WS_ACCEPT);
        let answer = head.headers.get("sec-websocket-extensions").cloned();
        let inflater = answer
            .as_ref()
            .map(|_| Inflate::raw(15).expect("an inflater"));
        Self {
            tcp,
            answer,
            inflater,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.expect("sent");
    }

    /// Sends `text` as one message, compressed (as browsers send theirs) if agreed.
    async fn send_text(&mut self, text: &str) {
        assert!(self.inflater.is_some(), "permessage-deflate agreed");
        self.send(&frame(FIN | RSV1 | TEXT, &deflated(text.as_bytes())))
            .await;
    }

    /// The next frame, within [`FRAME_DEADLINE`].
    async fn frame(&mut self) -> Frame {
        let read = async {
            let mut head = [0; 2];
            self.tcp.read_exact(&mut head).await.expect("a frame head");
            assert_eq!(head[1] & 0x80, 0, "a server frame is not masked");
            let (len, extra) = match head[1] & 0x7f {
                126 => (usize::from(self.tcp.read_u16().await.expect("a length")), 2),
                127 => (self.tcp.read_u64().await.expect("a length") as usize, 8),
                len => (usize::from(len), 0),
            };
            let mut payload = vec![0; len];
            self.tcp.read_exact(&mut payload).await.expect("a payload");
            Frame {
                first: head[0],
                payload,
                wire: 2 + extra + len,
            }
        };
        timeout(FRAME_DEADLINE, read)
            .await
            .expect("a frame in time")
    }

    /// The next message, decoded, and its frame's bytes on the wire and its payload's.
    async fn message(&mut self) -> (Received, usize, usize) {
        let frame = self.frame().await;
        assert_ne!(frame.first & FIN, 0, "the server does not fragment");
        let compressed = frame.first & RSV1 != 0;
        let sizes = (frame.wire, frame.payload.len());
        let received = match frame.first & 0x0f {
            TEXT => {
                let text = if compressed {
                    let inflater = self.inflater.as_mut().expect("RSV1 only once agreed");
                    let mut text = Vec::new();
                    let data = [frame.payload.as_slice(), &FLUSH_TAIL].concat();
                    inflater
                        .inflate(&data, &mut text, usize::MAX)
                        .expect("valid deflate data");
                    text
                } else {
                    frame.payload
                };
                Received::Text(String::from_utf8(text).expect("UTF-8"), compressed)
            }
            first => {
                assert!(!compressed, "a control frame is never compressed");
                match first {
                    CLOSE => {
                        let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
                        let reason = String::from_utf8(frame.payload[2..].to_vec()).expect("UTF-8");
                        Received::Close(code, reason)
                    }
                    PING => Received::Ping(frame.payload),
                    PONG => Received::Pong(frame.payload),
                    other => panic!("unexpected frame {other:#x}"),
                }
            }
        };
        (received, sizes.0, sizes.1)
    }

    /// The next message, decoded.
    async fn next(&mut self) -> Received {
        self.message().await.0
    }

    /// Every text message up to the close frame, and the close frame's code and reason.
    async fn until_close(&mut self) -> (Vec<String>, u16, String) {
        let mut texts = Vec::new();
        loop {
            match self.next().await {
                Received::Text(text, _) => texts.push(text),
                Received::Close(code, reason) => return (texts, code, reason),
                Received::Ping(_) | Received::Pong(_) => {}
            }
        }
    }

    /// The next text message, which must be a compressed chunk: its index.
    async fn chunk(&mut self) -> u64 {
        match self.next().await {
            Received::Text(text, true) => index_of(&text),
            other => panic!("expected a compressed chunk, got {other:?}"),
        }
    }
}

/// The index of the chunk whose JSON is `text` (which must be exactly a chunk's).
fn index_of(text: &str) -> u64 {
    let json: serde_json::Value = serde_json::from_str(text).expect("JSON");
    let index = json["index"]
        .as_u64()
        .unwrap_or_else(|| panic!("not a chunk: {text}"));
    assert_eq!(text, chunk_json(index));
    index
}

/// `chunkstream_bytes_sent_total{transport="ws",encoding}`.
async fn bytes_sent(app: &TestApp, encoding: &str) -> f64 {
    app.metric(
        "chunkstream_bytes_sent_total",
        &[("transport", "ws"), ("encoding", encoding)],
    )
    .await
}

#[tokio::test]
async fn a_compressed_stream_round_trips_with_a_compressed_pause_resume_and_stop() {
    let app = spawn_app().await;
    let mut ws = Client::open(&app, "?count=100000&interval_ms=20", &[BROWSER_OFFER]).await;
    assert_eq!(ws.answer.as_deref(), Some(ANSWER));
    assert_eq!(ws.chunk().await, 0);
    ws.send_text(r#"{"action":"pause"}"#).await;
    // Messages are handled in order: once this one is answered, the stream is paused.
    ws.send_text("?").await;
    let mut last = 0;
    loop {
        match ws.next().await {
            Received::Text(text, true) if text.starts_with(r#"{"error":"#) => break,
            Received::Text(text, true) => last = index_of(&text),
            other => panic!("{other:?}"),
        }
    }
    // Paused: nothing more comes, for many intervals.
    let quiet = timeout(Duration::from_millis(300), ws.frame()).await;
    assert!(quiet.is_err(), "a frame while paused: {quiet:?}");
    ws.send_text(r#"{"action":"resume"}"#).await;
    assert_eq!(ws.chunk().await, last + 1);
    ws.send_text(r#"{"action":"stop"}"#).await;
    let (texts, code, reason) = ws.until_close().await;
    assert!(texts.len() < 100, "{} chunks after stop", texts.len());
    assert_eq!((code, reason.as_str()), (1000, "stopped"));
    wait_for_outcome(&app, "stopped", 1.0).await;
    assert!(bytes_sent(&app, "deflate").await > 0.0);
    assert_eq!(bytes_sent(&app, "identity").await, 0.0);
}

#[tokio::test]
async fn each_offer_gets_the_answer_rfc_7692_calls_for_or_a_plain_stream() {
    let app = spawn_app().await;
    let snct = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    let window = "permessage-deflate; client_no_context_takeover; server_max_window_bits=9";
    // (case, the Sec-WebSocket-Extensions lines, the answer)
    let cases: [(&str, &[&str], Option<&str>); 17] = [
        (
            "Chromium, python websockets",
            &[BROWSER_OFFER],
            Some(ANSWER),
        ),
        ("Firefox", &["permessage-deflate"], Some(ANSWER)),
        (
            "a client window",
            &["permessage-deflate; client_max_window_bits=10"],
            Some(ANSWER),
        ),
        (
            "server_no_context_takeover",
            &["permessage-deflate; server_no_context_takeover"],
            Some(snct),
        ),
        (
            "a server window",
            &["permessage-deflate; server_max_window_bits=12"],
            Some(window),
        ),
        ("no offer", &[], None),
        (
            "a 256-byte window",
            &["permessage-deflate; server_max_window_bits=8"],
            None,
        ),
        (
            "a window too small",
            &["permessage-deflate; client_max_window_bits=7"],
            None,
        ),
        (
            "a window too large",
            &["permessage-deflate; server_max_window_bits=16"],
            None,
        ),
        (
            "a window not a number",
            &["permessage-deflate; client_max_window_bits=x"],
            None,
        ),
        (
            "a repeated parameter",
            &["permessage-deflate; client_max_window_bits; client_max_window_bits"],
            None,
        ),
        ("an unknown parameter", &["permessage-deflate; foo=1"], None),
        (
            "unknown extensions",
            &["x-webkit-deflate-frame, foo; bar=1"],
            None,
        ),
        (
            "a declined offer, then an acceptable one",
            &["permessage-deflate; server_max_window_bits=8, permessage-deflate"],
            Some(ANSWER),
        ),
        (
            "an unknown extension first",
            &["x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover"],
            Some(snct),
        ),
        (
            "offers over two header lines",
            &[
                "permessage-deflate; foo",
                "permessage-deflate; server_max_window_bits=10",
            ],
            Some(window),
        ),
        (
            "the first of two acceptable offers",
            &["permessage-deflate; server_max_window_bits=15, permessage-deflate"],
            Some(window),
        ),
    ];
    for (case, offers, expected) in cases {
        let mut ws = Client::open(&app, "?count=3", offers).await;
        assert_eq!(ws.answer.as_deref(), expected, "{case}");
        let compressed = expected.is_some();
        for index in 0..3 {
            let message = ws.next().await;
            assert_eq!(
                message,
                Received::Text(chunk_json(index), compressed),
                "{case}"
            );
        }
        assert_eq!(
            ws.next().await,
            Received::Close(1000, "done".into()),
            "{case}"
        );
    }
    wait_for_outcome(&app, "completed", cases.len() as f64).await;
}

#[tokio::test]
async fn with_compression_off_no_offer_is_answered() {
    let app = spawn_app_with(|c| c.compression = chunkstream::config::Compression::Off).await;
    let mut ws = Client::open(&app, "?count=2", &[BROWSER_OFFER]).await;
    assert_eq!(ws.answer, None);
    let (texts, code, _) = ws.until_close().await;
    assert_eq!(texts, [chunk_json(0), chunk_json(1)]);
    assert_eq!(code, 1000);
    wait_for_outcome(&app, "completed", 1.0).await;
    assert!(bytes_sent(&app, "identity").await > 0.0);
    assert_eq!(bytes_sent(&app, "deflate").await, 0.0);
}

#[tokio::test]
async fn compressed_messages_that_break_the_rules_close_with_their_codes() {
    let app = spawn_app().await;
    let stop = deflated(br#"{"action":"stop"}"#);
    let (start, end) = stop.split_at(5);
    // (case, offered?, the frames, the close code)
    let cases: [(&str, bool, Vec<u8>, u16); 8] = [
        (
            "100 kB that deflate to a few hundred bytes",
            true,
            frame(FIN | RSV1 | TEXT, &deflated(&[b'a'; 100_000])),
            1009,
        ),
        (
            "a compressed frame over 4 KiB",
            true,
            frame(FIN | RSV1 | TEXT, &vec![0; 5000]),
            1009,
        ),
        (
            "text not UTF-8 once inflated",
            true,
            frame(FIN | RSV1 | TEXT, &deflated(&[b'a', 0xff, 0xfe])),
            1007,
        ),
        (
            "data that does not inflate",
            true,
            frame(FIN | RSV1 | TEXT, &[0xff; 5]),
            1002,
        ),
        (
            "RSV1 on a ping",
            true,
            frame(FIN | RSV1 | PING, b"hi"),
            1002,
        ),
        (
            "RSV1 on a continuation",
            true,
            [
                frame(RSV1 | TEXT, start),
                frame(FIN | RSV1 | CONTINUATION, end),
            ]
            .concat(),
            1002,
        ),
        (
            "RSV1 with nothing negotiated",
            false,
            frame(FIN | RSV1 | TEXT, &stop),
            1002,
        ),
        ("RSV1 on a pong", true, frame(FIN | RSV1 | PONG, b""), 1002),
    ];
    for (i, (case, offered, bytes, code)) in cases.into_iter().enumerate() {
        let offers: &[&str] = if offered { &[BROWSER_OFFER] } else { &[] };
        let mut ws = Client::open(&app, "?count=1000&interval_ms=1000", offers).await;
        assert_eq!(ws.answer.is_some(), offered, "{case}");
        assert_eq!(
            ws.next().await,
            Received::Text(chunk_json(0), offered),
            "{case}"
        );
        ws.send(&bytes).await;
        let (texts, got, reason) = ws.until_close().await;
        assert!(texts.is_empty(), "{case}: {texts:?}");
        assert_eq!(got, code, "{case}: {reason}");
        assert!(!reason.is_empty(), "{case}");
        // Then a clean end: the server closes the connection once it has lingered.
        let mut rest = Vec::new();
        let end = timeout(FRAME_DEADLINE, ws.tcp.read_to_end(&mut rest)).await;
        assert!(end.is_ok(), "{case}: the connection is still open");
        wait_for_outcome(&app, "protocol_error", (i + 1) as f64).await;
    }
}

#[tokio::test]
async fn a_fragmented_compressed_stop_with_a_ping_between_is_obeyed() {
    let app = spawn_app().await;
    let mut ws = Client::open(&app, "?count=1000&interval_ms=1000", &[BROWSER_OFFER]).await;
    assert_eq!(ws.chunk().await, 0);
    let stop = deflated(br#"{"action":"stop"}"#);
    let (start, end) = stop.split_at(5);
    let frames = [
        frame(RSV1 | TEXT, start),
        frame(FIN | PING, b"hi"),
        frame(FIN | CONTINUATION, end),
    ];
    // One byte at a time: the server sees every frame head cut by reads.
    for byte in frames.concat() {
        ws.send(&[byte]).await;
    }
    // The ping is answered between the two frames of the message.
    assert_eq!(ws.next().await, Received::Pong(b"hi".to_vec()));
    let (texts, code, reason) = ws.until_close().await;
    assert!(texts.is_empty(), "{texts:?}");
    assert_eq!((code, reason.as_str()), (1000, "stopped"));
    wait_for_outcome(&app, "stopped", 1.0).await;
}

#[tokio::test]
async fn an_uncompressed_message_on_a_compressed_connection_is_obeyed() {
    let app = spawn_app().await;
    let mut ws = Client::open(&app, "?count=1000&interval_ms=1000", &[BROWSER_OFFER]).await;
    assert_eq!(ws.chunk().await, 0);
    ws.send(&frame(FIN | TEXT, br#"{"action":"stop"}"#)).await;
    let (_, code, reason) = ws.until_close().await;
    assert_eq!((code, reason.as_str()), (1000, "stopped"));
}

#[tokio::test]
async fn bytes_on_the_wire_fall_threefold_and_the_metric_counts_them() {
    let app = spawn_app().await;
    let count = 2000;
    let mut sizes = Vec::new();
    for offers in [&[][..], &[BROWSER_OFFER]] {
        let mut ws = Client::open(&app, &format!("?count={count}"), offers).await;
        let (mut wire, mut payload) = (0, 0);
        for index in 0..count {
            let (message, frame, data) = ws.message().await;
            assert_eq!(
                message,
                Received::Text(chunk_json(index), !offers.is_empty())
            );
            wire += frame;
            payload += data;
        }
        assert_eq!(ws.next().await, Received::Close(1000, "done".into()));
        sizes.push((wire, payload));
    }
    let [(identity, identity_payload), (deflate, deflate_payload)] = sizes[..] else {
        unreachable!("two streams");
    };
    // Per chunk message, the frame head included.
    assert!(
        deflate * 3 <= identity,
        "{identity} bytes on the wire uncompressed, {deflate} compressed"
    );
    wait_for_outcome(&app, "completed", 2.0).await;
    assert_eq!(bytes_sent(&app, "identity").await, identity_payload as f64);
    assert_eq!(bytes_sent(&app, "deflate").await, deflate_payload as f64);
}

#[tokio::test]
async fn shutdown_closes_a_compressed_socket_with_1001_at_once() {
    let app = spawn_app().await;
    let mut ws = Client::open(&app, "?count=1000&interval_ms=60000", &[BROWSER_OFFER]).await;
    assert_eq!(ws.chunk().await, 0);
    let asked = Instant::now();
    let server = tokio::spawn(app.shutdown());
    assert_eq!(
        ws.next().await,
        Received::Close(1001, "server shutting down".into())
    );
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "{:?}",
        asked.elapsed()
    );
    // Answering the close lets the server finish at once.
    ws.send(&frame(FIN | CLOSE, &1001u16.to_be_bytes())).await;
    server
        .await
        .expect("no panic")
        .expect("server stopped cleanly");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn a_compressed_client_that_stops_reading_is_ended_as_stalled() {
    let app = spawn_app_with(|c| c.stall_timeout_secs = 1).await;
    // A small receive window, so that the server's writes block soon.
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a buffer size");
    let tcp = socket.connect(app.addr).await.expect("connect");
    let ws = Client::upgrade(tcp, &app, "?count=100000000", &[BROWSER_OFFER]).await;
    assert_eq!(ws.answer.as_deref(), Some(ANSWER));
    // ...and never read.
    wait_until(Duration::from_secs(10), "the stream to stall", || async {
        crate::helpers::outcome(&app, "ws", "stalled").await == 1.0
    })
    .await;
    assert!(bytes_sent(&app, "deflate").await > 0.0);
}

/// `target/`, or `CARGO_TARGET_DIR`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

#[tokio::test]
async fn python_websockets_negotiates_streams_and_is_understood() {
    // Installed at a pinned version by ./scripts/test.sh.
    let python = target_dir().join("python-websockets/bin/python");
    let installed = std::process::Command::new(&python)
        .args(["-c", "import websockets"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !needs("python websockets", installed) {
        return;
    }
    let app = spawn_app().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/ws_deflate.py");
    let port = app.addr.port().to_string();
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .arg(port)
            .output()
            .expect("python runs")
    });
    let output = timeout(Duration::from_secs(60), run)
        .await
        .expect("the python client finishes")
        .expect("no panic");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("PASS"),
        "python websockets:\n{stdout}\n{stderr}"
    );
    // What the server counted of those three streams.
    wait_until(
        Duration::from_secs(2),
        "the three streams' ends",
        || async {
            let outcome = |o| crate::helpers::outcome(&app, "ws", o);
            outcome("completed").await == 1.0
                && outcome("stopped").await == 1.0
                && outcome("protocol_error").await == 1.0
        },
    )
    .await;
    assert!(bytes_sent(&app, "deflate").await > 0.0);
    assert_eq!(bytes_sent(&app, "identity").await, 0.0);
}

#[tokio::test]
async fn the_spec_documents_the_extension_in_the_101() {
    let app = spawn_app().await;
    let spec: serde_json::Value = app.get("/openapi.json").await.json().await.expect("JSON");
    let op = &spec["paths"]["/stream/ws"]["get"];
    let upgrade = &op["responses"]["101"];
    let header = &upgrade["headers"]["SEC-WEBSOCKET-EXTENSIONS"];
    let about = header["description"].as_str().expect("a description");
    assert!(about.contains("client_no_context_takeover"), "{about}");
    assert_ne!(header["required"], true, "absent when nothing is agreed");
    let closes = upgrade["description"].as_str().expect("a description");
    assert!(closes.contains("permessage-deflate"), "{closes}");
    let description = op["description"].as_str().expect("a description");
    assert!(description.contains("--compression off"), "{description}");
}
