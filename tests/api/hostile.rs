//! Hostile and broken clients: connections that send nothing, heads sent a byte at a time,
//! idle keep-alives, streams nobody reads, one client taking every slot, oversized heads,
//! and more silent connections than file descriptors. Each test sets short timeouts by flag.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

use crate::helpers::{
    TestApp, outcome, raw, read_until_closed, spawn_app, spawn_app_with, wait_until,
};

/// Reads one response (head and a `Content-Length` body) from `tcp`; returns the status
/// line and the body.
async fn read_response(tcp: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut byte = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut byte))
            .await
            .expect("a response within 10 s")
            .expect("read");
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&byte[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("an ASCII head");
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .expect("a Content-Length")
        .trim()
        .parse()
        .expect("a length");
    while buf.len() < head_end + length {
        let mut more = [0u8; 1024];
        let n = tcp.read(&mut more).await.expect("read");
        assert!(n > 0, "closed inside the body");
        buf.extend_from_slice(&more[..n]);
    }
    let status = head.lines().next().unwrap_or_default().to_owned();
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
    (status, body)
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";

#[tokio::test]
async fn connections_that_send_nothing_are_closed_after_the_header_timeout() {
    let app = spawn_app_with(|c| c.header_timeout_secs = 1).await;
    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(raw(&app).await);
    }
    let mut first_close = None;
    for tcp in &mut silent {
        let got = read_until_closed(tcp, Duration::from_secs(5)).await;
        first_close.get_or_insert(opened.elapsed());
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    }
    let first_close = first_close.expect("50 connections");
    assert!(
        first_close >= Duration::from_millis(900),
        "closed {first_close:?} after opening: before the timeout"
    );
    // A well-behaved client is served meanwhile and after.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_head_sent_one_line_at_a_time_is_cut_at_the_header_timeout() {
    let app = spawn_app_with(|c| c.header_timeout_secs = 1).await;
    let opened = Instant::now();
    let (mut reader, mut writer) = raw(&app).await.into_split();
    let drip = tokio::spawn(async move {
        writer.write_all(b"GET /healthz HTTP/1.1\r\n").await?;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            writer.write_all(b"X-Drip: 1\r\n").await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    });
    let got = read_until_closed(&mut reader, Duration::from_secs(5)).await;
    let closed = opened.elapsed();
    assert!(closed >= Duration::from_millis(900), "{closed:?}");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    drip.abort();
}

#[tokio::test]
async fn keep_alive_works_within_the_idle_timeout_then_the_connection_is_closed() {
    let app = spawn_app_with(|c| {
        c.header_timeout_secs = 1;
        c.idle_timeout_secs = 2;
    })
    .await;
    let mut tcp = raw(&app).await;
    tcp.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut tcp).await.0, "HTTP/1.1 200 OK");
    // Idle for longer than the header timeout but within the idle timeout: still served.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tcp.write_all(HEALTHZ).await.unwrap();
    let (status, body) = read_response(&mut tcp).await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", r#"{"status":"ok"}"#)
    );
    let answered = Instant::now();
    let got = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(got.is_empty());
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(1800),
        "closed after {idle:?} idle"
    );
}

#[tokio::test]
async fn a_later_head_must_be_complete_a_header_timeout_after_its_first_byte() {
    let app = spawn_app_with(|c| {
        c.header_timeout_secs = 1;
        c.idle_timeout_secs = 30;
    })
    .await;
    let mut tcp = raw(&app).await;
    tcp.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut tcp).await.0, "HTTP/1.1 200 OK");
    // The next head starts and never ends: cut after the header timeout, not the idle one.
    tcp.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
}

/// A connection whose receive buffer is small, so that a client that stops reading
/// fills the buffers between it and the server quickly.
async fn small_window(app: &TestApp) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    socket.connect(app.addr).await.expect("connect")
}

#[tokio::test]
async fn streams_whose_client_reads_nothing_end_as_stalled_and_free_their_slot() {
    let app = spawn_app_with(|c| {
        c.stall_timeout_secs = 1;
        c.max_streams = 2;
    })
    .await;
    for (transport, path) in [("text", "/stream"), ("sse", "/stream/sse")] {
        let mut tcp = small_window(&app).await;
        let request = format!("GET {path}?count=100000000 HTTP/1.1\r\nHost: test\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let open = [("transport", transport)];
        wait_until(Duration::from_secs(2), "the stream to open", || async {
            app.metric("chunkstream_open_streams", &open).await == 1.0
        })
        .await;
        wait_until(Duration::from_secs(10), "the stream to stall", || async {
            outcome(&app, transport, "stalled").await == 1.0
        })
        .await;
        assert_eq!(app.metric("chunkstream_open_streams", &open).await, 0.0);
        assert_eq!(outcome(&app, transport, "client_gone").await, 0.0);
        // The connection is closed: what the buffers held, then the end.
        read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    }
    // Both slots are free again.
    let a = app.get("/stream?count=1000&interval_ms=100").await;
    let b = app.get("/stream/sse?count=1000&interval_ms=100").await;
    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 200);
}

#[tokio::test]
async fn a_slow_but_steady_reader_is_never_stalled() {
    let app = spawn_app_with(|c| c.stall_timeout_secs = 1).await;
    // A paced stream read a little at a time, and a flat-out one read far slower than the
    // server writes (the server waits on this client most of the time), for three periods.
    for path in [
        "/stream?count=100000&interval_ms=5",
        "/stream?count=100000000",
    ] {
        let mut tcp = raw(&app).await;
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut received = 0;
        while started.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut buf = vec![0u8; 64 * 1024];
            let n = tcp.read(&mut buf).await.expect("still streaming");
            assert!(n > 0, "{path}: closed after {:?}", started.elapsed());
            received += n;
        }
        assert!(received > 0);
        assert_eq!(outcome(&app, "text", "stalled").await, 0.0, "{path}");
        assert_eq!(
            app.metric("chunkstream_open_streams", &[("transport", "text")])
                .await,
            1.0,
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_paced_stream_nobody_reads_is_not_stalled_while_the_buffers_take_it() {
    let app = spawn_app_with(|c| c.stall_timeout_secs = 1).await;
    let mut tcp = raw(&app).await;
    tcp.write_all(b"GET /stream/sse?count=1000&interval_ms=20 HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    wait_until(Duration::from_secs(2), "the stream to open", || async {
        app.metric("chunkstream_open_streams", &[("transport", "sse")])
            .await
            == 1.0
    })
    .await;
    // Three stall periods unread: a few KiB, which the socket buffers hold.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(outcome(&app, "sse", "stalled").await, 0.0);
    let mut buf = vec![0u8; 64 * 1024];
    assert!(tcp.read(&mut buf).await.unwrap() > 0);
}

#[tokio::test]
async fn one_client_gets_its_share_then_429_while_others_get_theirs() {
    let app = spawn_app_with(|c| c.max_streams_per_client = 2).await;
    let mut held = Vec::new();
    for path in [
        "/stream?count=1000&interval_ms=1000",
        "/stream/sse?count=1000&interval_ms=1000",
    ] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        held.push(resp);
    }
    // The share covers every transport; a HEAD gets what a GET would.
    let head = app.client.head(app.url("/stream")).send().await.unwrap();
    assert_eq!(head.status(), 429);
    // Claiming to be someone else is not believed from an untrusted peer.
    let forged = app
        .client
        .get(app.url("/stream/sse"))
        .header("X-Forwarded-For", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 429);
    let resp = app.get("/stream").await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: serde_json::Value = resp.json().await.unwrap();
    let error = body["error"].as_str().expect("an error");
    assert!(
        error.contains("--max-streams-per-client") && error.contains("limit 2"),
        "{error}"
    );
    assert_eq!(outcome(&app, "text", "rejected").await, 1.0);
    assert_eq!(outcome(&app, "sse", "rejected").await, 1.0);
    // Health and metrics are not streams.
    assert_eq!(app.get("/healthz").await.status(), 200);
    held.pop();
    wait_until(Duration::from_secs(1), "the client's slot back", || async {
        app.get("/stream?count=1").await.status() == 200
    })
    .await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_share() {
    let app = spawn_app_with(|c| {
        c.max_streams_per_client = 1;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let open = |client: &'static str| {
        app.client
            .get(app.url("/stream?count=1000&interval_ms=1000"))
            .header("X-Forwarded-For", client)
            .send()
    };
    let mut held = Vec::new();
    // (case, forwarded client, status)
    for (case, client, status) in [
        ("first client", "198.51.100.1", 200),
        ("first client again", "198.51.100.1", 429),
        ("second client", "198.51.100.2", 200),
        ("an IPv6 client", "2001:db8:1:2::1", 200),
        ("the same IPv6 /64", "2001:db8:1:2::ffff", 429),
        ("another /64", "2001:db8:1:3::1", 200),
    ] {
        let resp = open(client).await.unwrap();
        assert_eq!(resp.status(), status, "{case}");
        held.push(resp);
    }
    assert_eq!(outcome(&app, "text", "rejected").await, 2.0);
}

#[tokio::test]
async fn oversized_request_heads_are_refused_and_the_server_goes_on() {
    let app = spawn_app().await;
    let huge_header = format!("X-Huge: {}\r\n", "a".repeat(1 << 20));
    let many_headers = "X-Many: 1\r\n".repeat(10_000);
    for (case, headers) in [
        ("a 1 MiB header", huge_header),
        ("10 000 headers", many_headers),
    ] {
        let (mut reader, mut writer) = raw(&app).await.into_split();
        let head = format!("GET /healthz HTTP/1.1\r\nHost: test\r\n{headers}\r\n");
        // The server answers and closes before it has read everything: ignore the write's end.
        let writing = tokio::spawn(async move { writer.write_all(head.as_bytes()).await });
        let answer = read_until_closed(&mut reader, Duration::from_secs(5)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 431 ") || answer.starts_with("HTTP/1.1 400 "),
            "{case}: {answer:?}"
        );
        let _ = writing.await;
        assert_eq!(app.get("/healthz").await.status(), 200, "{case}");
    }
}

#[tokio::test]
async fn the_head_limit_is_exact_however_tcp_splits_the_head() {
    use chunkstream::server::MAX_HEAD_SIZE;

    /// A request head of exactly `size` bytes.
    fn head(size: usize) -> String {
        let fixed = "GET /healthz HTTP/1.1\r\nHost: test\r\nX-Pad: \r\n\r\n".len();
        let pad = "a".repeat(size - fixed);
        format!("GET /healthz HTTP/1.1\r\nHost: test\r\nX-Pad: {pad}\r\n\r\n")
    }
    let app = spawn_app().await;
    // (case, head size, pieces it is written in, status)
    for (case, size, piece, status) in [
        (
            "at the limit, one write",
            MAX_HEAD_SIZE,
            MAX_HEAD_SIZE,
            "200",
        ),
        ("at the limit, in 4 KiB pieces", MAX_HEAD_SIZE, 4096, "200"),
        (
            "one byte over, one write",
            MAX_HEAD_SIZE + 1,
            MAX_HEAD_SIZE + 1,
            "431",
        ),
        (
            "one byte over, in 4 KiB pieces",
            MAX_HEAD_SIZE + 1,
            4096,
            "431",
        ),
        (
            "20 KiB over, one write",
            MAX_HEAD_SIZE + 20 * 1024,
            usize::MAX,
            "431",
        ),
    ] {
        let (mut reader, mut writer) = raw(&app).await.into_split();
        let head = head(size);
        assert_eq!(head.len(), size, "{case}");
        let writing = tokio::spawn(async move {
            for piece in head.as_bytes().chunks(piece) {
                writer.write_all(piece).await?;
                writer.flush().await?;
                tokio::task::yield_now().await;
            }
            // Half-close: the server answers, then sees the end.
            writer.shutdown().await
        });
        let answer = read_until_closed(&mut reader, Duration::from_secs(5)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{case}: {answer:?}"
        );
        let _ = writing.await;
    }
}

#[tokio::test]
async fn out_of_file_descriptors_silent_connections_time_out_and_others_are_served() {
    use crate::helpers::Binary;

    const FD_LIMIT: usize = 64;
    let mut server = Binary::start(
        &["--addr", "127.0.0.1:0", "--header-timeout-secs", "1"],
        &[("RUST_LOG", "info")],
        Some(FD_LIMIT),
    )
    .await;
    // Twice as many silent connections as the process has descriptors: the kernel queues
    // what the server cannot accept.
    let mut silent = Vec::new();
    for _ in 0..2 * FD_LIMIT {
        silent.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    let asked = Instant::now();
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    tcp.write_all(HEALTHZ).await.unwrap();
    let (status, _) = tokio::time::timeout(Duration::from_secs(10), read_response(&mut tcp))
        .await
        .unwrap_or_else(|_| panic!("no answer in 10 s\n{}", server.log()));
    assert_eq!(status, "HTTP/1.1 200 OK");
    // It had to wait for descriptors to free up: the silent ones timing out.
    assert!(
        asked.elapsed() >= Duration::from_millis(900),
        "{:?}",
        asked.elapsed()
    );
    assert!(server.log().contains("accept failed"), "{}", server.log());
    drop(silent);
    server.process.terminate(Duration::from_secs(5)).await;
}
