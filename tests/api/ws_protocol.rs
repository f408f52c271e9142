//! `GET /stream/ws` at the edges of RFC 6455: malformed opening handshakes, and frames that
//! break the protocol once the connection is established. Raw sockets, since a well-behaved
//! client library refuses to send most of these.

use futures_util::StreamExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, protocol::Role},
};

use crate::{
    helpers::{Head, TestApp, WS_ACCEPT, WS_HANDSHAKE, read_head, send_head, spawn_app},
    ws::{
        Client, FRAME_DEADLINE, assert_close, chunk_json, next, read_to_close, wait_for_outcome,
        ws_metric,
    },
};

/// The headers of a valid opening handshake, with `name` set to `value` (or left out when
/// `value` is `None`).
pub fn upgrade_with<'a>(name: &str, value: Option<&'a str>) -> Vec<(&'static str, &'a str)> {
    WS_HANDSHAKE
        .into_iter()
        .filter_map(|(n, v)| {
            if n == name {
                value.map(|value| (n, value))
            } else {
                Some((n, v))
            }
        })
        .collect()
}

/// The JSON body that follows `head`.
async fn read_json(tcp: &mut TcpStream, head: &Head) -> serde_json::Value {
    let length: usize = head.headers["content-length"].parse().expect("a length");
    let mut body = vec![0; length];
    tcp.read_exact(&mut body).await.expect("the body");
    serde_json::from_slice(&body).expect("a JSON body")
}

/// A raw connection upgraded to `/stream/ws{query}` with the headers of a valid handshake
/// changed by `headers`; fails unless the answer is a 101 with the right accept key.
async fn raw_upgrade(app: &TestApp, query: &str, headers: &[(&'static str, &str)]) -> TcpStream {
    let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    upgrade_on(&mut tcp, app, query, headers).await;
    tcp
}

/// Upgrades `tcp` to `/stream/ws{query}` by hand, with the headers of a valid handshake
/// changed by `headers`; fails unless the answer is a 101 with the right accept key.
pub async fn upgrade_on(
    tcp: &mut TcpStream,
    app: &TestApp,
    query: &str,
    headers: &[(&'static str, &str)],
) {
    let request_line = format!("GET /stream/ws{query} HTTP/1.1");
    send_head(tcp, &app.addr.to_string(), &request_line, headers).await;
    let head = read_head(tcp).await;
    assert_eq!(head.status, 101, "{head:?}");
    assert_eq!(head.headers["sec-websocket-accept"], WS_ACCEPT);
}

/// A tungstenite client on a connection upgraded by hand.
async fn client(tcp: TcpStream) -> Client {
    WebSocketStream::from_raw_socket(MaybeTlsStream::Plain(tcp), Role::Client, None).await
}

/// A client frame: `first` (FIN, RSV and opcode bits), then the length and `payload`,
/// masked as RFC 6455 §5.3 requires of a client (unless `masked` is false).
fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut frame = vec![first];
    match payload.len() {
        len @ 0..=125 => frame.push(mask_bit | len as u8),
        len @ 126..=0xffff => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if !masked {
        frame.extend_from_slice(payload);
        return frame;
    }
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// FIN + text, FIN + continuation, text without FIN, continuation without FIN.
const TEXT: u8 = 0x81;
const LAST: u8 = 0x80;
const FIRST: u8 = 0x01;
const MORE: u8 = 0x00;
/// FIN + close.
const CLOSE: u8 = 0x88;

/// One server frame: its first byte and its payload (server frames are never masked).
async fn read_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0; 2];
    tcp.read_exact(&mut head).await.expect("a frame head");
    let len = match head[1] & 0x7f {
        126 => usize::from(tcp.read_u16().await.expect("a length")),
        127 => usize::try_from(tcp.read_u64().await.expect("a length")).expect("a length"),
        len => usize::from(len),
    };
    let mut payload = vec![0; len];
    tcp.read_exact(&mut payload).await.expect("a payload");
    (head[0], payload)
}

#[tokio::test]
async fn malformed_handshakes_get_a_json_4xx_naming_the_fault_and_open_nothing() {
    let app = spawn_app().await;
    let get = "GET /stream/ws HTTP/1.1";
    // (case, request line, headers, status, what the error names, extra response header)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'static str, &'a str)>,
        u16,
        &'a str,
        Option<(&'a str, &'a str)>,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "HTTP/1.0",
            "GET /stream/ws HTTP/1.0",
            upgrade_with("", None),
            400,
            "HTTP/1.1",
            None,
        ),
        (
            "no upgrade at all",
            get,
            vec![],
            400,
            "WebSocket client",
            None,
        ),
        (
            "another protocol",
            get,
            upgrade_with("Upgrade", Some("h2c")),
            400,
            "`Upgrade`",
            None,
        ),
        (
            "no Connection: Upgrade",
            get,
            upgrade_with("Connection", Some("keep-alive")),
            400,
            "`Connection`",
            None,
        ),
        (
            "version 8",
            get,
            upgrade_with("Sec-WebSocket-Version", Some("8")),
            426,
            "`Sec-WebSocket-Version`",
            Some(("sec-websocket-version", "13")),
        ),
        (
            "no version",
            get,
            upgrade_with("Sec-WebSocket-Version", None),
            426,
            "`Sec-WebSocket-Version`",
            Some(("upgrade", "websocket")),
        ),
        (
            "empty key",
            get,
            upgrade_with("Sec-WebSocket-Key", Some("")),
            400,
            "`Sec-WebSocket-Key`",
            None,
        ),
        (
            "key not base64",
            get,
            upgrade_with("Sec-WebSocket-Key", Some("not base64 at all!")),
            400,
            "`Sec-WebSocket-Key`",
            None,
        ),
        (
            "key of 15 bytes",
            get,
            upgrade_with("Sec-WebSocket-Key", Some("dGhlIHNhbXBsZSBub25j")),
            400,
            "`Sec-WebSocket-Key`",
            None,
        ),
        (
            "no key",
            get,
            upgrade_with("Sec-WebSocket-Key", None),
            400,
            "`Sec-WebSocket-Key`",
            None,
        ),
    ];
    for (case, request_line, headers, status, needle, header) in cases {
        let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
        send_head(&mut tcp, &app.addr.to_string(), request_line, &headers).await;
        let head = read_head(&mut tcp).await;
        assert_eq!(head.status, status, "{case}: {head:?}");
        assert_eq!(
            head.headers["content-type"], "application/json; charset=utf-8",
            "{case}"
        );
        if let Some((name, value)) = header {
            assert_eq!(head.headers[name], value, "{case}");
        }
        let body = read_json(&mut tcp, &head).await;
        let error = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{case}: {body}"));
        assert!(error.contains(needle), "{case}: {error}");
    }
    assert_eq!(ws_metric(&app, "chunkstream_open_streams").await, 0.0);
    assert_eq!(
        crate::helpers::outcome(&app, "ws", "client_gone").await,
        0.0
    );
}

#[tokio::test]
async fn head_with_upgrade_headers_is_refused_and_the_connection_stays_http() {
    let app = spawn_app().await;
    let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
    send_head(
        &mut tcp,
        &app.addr.to_string(),
        "HEAD /stream/ws HTTP/1.1",
        &upgrade_with("", None),
    )
    .await;
    let head = read_head(&mut tcp).await;
    // RFC 6455 §4.1: the handshake is a GET. A HEAD answer has no body to read.
    assert_eq!(head.status, 400, "{head:?}");
    assert!(!head.headers.contains_key("sec-websocket-accept"));
    // Not upgraded: the same connection serves the next request.
    send_head(
        &mut tcp,
        &app.addr.to_string(),
        "GET /healthz HTTP/1.1",
        &[],
    )
    .await;
    let head = read_head(&mut tcp).await;
    assert_eq!(head.status, 200);
    assert_eq!(read_json(&mut tcp, &head).await["status"], "ok");
    assert_eq!(ws_metric(&app, "chunkstream_open_streams").await, 0.0);
    assert_eq!(ws_metric(&app, "chunkstream_chunks_sent_total").await, 0.0);
    assert_eq!(
        crate::helpers::outcome(&app, "ws", "client_gone").await,
        0.0
    );
}

#[tokio::test]
async fn the_upgrade_token_is_case_insensitive() {
    let app = spawn_app().await;
    for upgrade in ["WEBSOCKET", "Websocket", "websocket"] {
        let tcp = raw_upgrade(&app, "?count=3", &upgrade_with("Upgrade", Some(upgrade))).await;
        let mut ws = client(tcp).await;
        let (texts, close) = read_to_close(&mut ws).await;
        assert_eq!(
            texts,
            [chunk_json(0), chunk_json(1), chunk_json(2)],
            "{upgrade}"
        );
        assert_close(&close, 1000, "done");
    }
    wait_for_outcome(&app, "completed", 3.0).await;
}

#[tokio::test]
async fn frames_that_break_rfc_6455_get_a_close_frame_with_their_code() {
    let app = spawn_app().await;
    let stop = br#"{"action":"stop"}"#;
    // (case, the frame, the close code)
    let cases = [
        ("an unmasked frame", frame(TEXT, stop, false), 1002),
        (
            "text that is not UTF-8",
            frame(TEXT, &[b'a', 0xff, 0xfe], true),
            1007,
        ),
        (
            "RSV1 set, no extension",
            frame(TEXT | 0x40, stop, true),
            1002,
        ),
        (
            "RSV3 set, no extension",
            frame(TEXT | 0x10, stop, true),
            1002,
        ),
        ("the reserved data opcode 3", frame(0x83, stop, true), 1002),
        (
            "the reserved control opcode 11",
            frame(0x8b, b"", true),
            1002,
        ),
        (
            "a continuation with nothing to continue",
            frame(LAST, stop, true),
            1002,
        ),
        ("a fragmented ping", frame(0x09, b"", true), 1002),
    ];
    for (i, (case, bad, code)) in cases.into_iter().enumerate() {
        let tcp = raw_upgrade(
            &app,
            "?count=1000&interval_ms=1000",
            &upgrade_with("", None),
        )
        .await;
        let mut ws = client(tcp).await;
        assert_eq!(next(&mut ws).await, Message::text(chunk_json(0)), "{case}");
        ws.get_mut().write_all(&bad).await.expect(case);
        let (texts, close) = read_to_close(&mut ws).await;
        assert!(texts.is_empty(), "{case}: {texts:?}");
        assert_eq!(u16::from(close.code), code, "{case}: {close:?}");
        assert!(!close.reason.is_empty(), "{case}");
        // Then a clean end: the server closes the connection, without a reset.
        let end = timeout(FRAME_DEADLINE, ws.next()).await.expect(case);
        assert!(end.is_none(), "{case}: {end:?}");
        wait_for_outcome(&app, "protocol_error", (i + 1) as f64).await;
    }
}

#[tokio::test]
async fn a_message_over_4_kib_sent_in_pieces_gets_1009_and_a_clean_close_not_a_reset() {
    let app = spawn_app().await;
    let payload = vec![b'x'; 8 * 1024];
    // One frame over the limit, in 1 KiB writes; then a message over the limit in 2 KiB
    // fragments, each a frame within it.
    let whole = frame(TEXT, &payload, true);
    let one_frame: Vec<Vec<u8>> = whole.chunks(1024).map(<[u8]>::to_vec).collect();
    let parts: Vec<&[u8]> = payload.chunks(2048).collect();
    let fragments: Vec<Vec<u8>> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| match i {
            0 => frame(FIRST, part, true),
            i if i == parts.len() - 1 => frame(LAST, part, true),
            _ => frame(MORE, part, true),
        })
        .collect();
    for (i, (case, pieces)) in [("one frame", one_frame), ("fragments", fragments)]
        .into_iter()
        .enumerate()
    {
        let mut tcp = raw_upgrade(
            &app,
            "?count=1000&interval_ms=1000",
            &upgrade_with("", None),
        )
        .await;
        let (first, chunk) = read_frame(&mut tcp).await;
        assert_eq!((first, chunk), (TEXT, chunk_json(0).into_bytes()), "{case}");
        // Every piece is taken, even those that arrive after the server's close frame.
        for piece in &pieces {
            tcp.write_all(piece).await.expect(case);
        }
        let (first, close) = read_frame(&mut tcp).await;
        assert_eq!(first, CLOSE, "{case}");
        assert_eq!(close[..2], 1009u16.to_be_bytes(), "{case}");
        // Answer the close as a client does; the server then ends the connection cleanly.
        tcp.write_all(&frame(CLOSE, &close[..2], true))
            .await
            .expect(case);
        let mut rest = Vec::new();
        let read = timeout(FRAME_DEADLINE, tcp.read_to_end(&mut rest))
            .await
            .expect(case);
        assert!(read.is_ok(), "{case}: {read:?}, not a clean end");
        assert!(rest.is_empty(), "{case}: {rest:?}");
        wait_for_outcome(&app, "protocol_error", (i + 1) as f64).await;
    }
}
