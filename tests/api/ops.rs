//! Operations: HEAD, metrics after every kind of ending, the real binary
//! (config errors, SIGTERM).

use std::{
    process::Command,
    time::{Duration, Instant},
};

use futures_util::StreamExt;

use crate::helpers::{Binary, Process, binary, outcome, raw_websocket, spawn_app, wait_until};

#[tokio::test]
async fn head_gets_a_streams_headers_without_opening_one() {
    let app = spawn_app().await;
    for (path, content_type) in [
        ("/stream?count=5", "text/plain; charset=utf-8"),
        ("/stream/sse?count=5", "text/event-stream"),
        ("/stream/jsonl?count=5", "application/jsonl"),
    ] {
        let resp = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], content_type, "{path}");
        assert_eq!(resp.headers()["cache-control"], "no-cache", "{path}");
    }
    let bad = app
        .client
        .head(app.url("/stream?count=-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // Nothing was opened, counted or sent, on any transport.
    let all = app.metrics().await;
    let touched: Vec<_> = all
        .iter()
        .filter(|(name, value)| name.starts_with("chunkstream_") && **value != 0.0)
        .collect();
    assert!(touched.is_empty(), "a HEAD opened a stream: {touched:?}");
    assert!(all.len() >= 4 * 9, "the contract's series: {all:?}");
}

#[tokio::test]
async fn metrics_tell_the_truth_after_mixed_endings() {
    let app = spawn_app().await;
    // Two complete text streams, one complete SSE stream.
    for path in ["/stream?count=7", "/stream?count=3", "/stream/sse?count=4"] {
        app.get(path).await.text().await.unwrap();
    }
    let app = &app;
    // One SSE client that leaves after chunk 0 (chunk 1 is due a second later).
    let resp = app.get("/stream/sse?count=1000&interval_ms=1000").await;
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    let m = |name: &'static str, t: &'static str| async move {
        app.metric(name, &[("transport", t)]).await
    };
    wait_until(
        Duration::from_secs(1),
        "the SSE stream to close",
        || async { m("chunkstream_open_streams", "sse").await == 0.0 },
    )
    .await;
    assert_eq!(outcome(app, "text", "completed").await, 2.0);
    assert_eq!(outcome(app, "sse", "completed").await, 1.0);
    assert_eq!(outcome(app, "sse", "client_gone").await, 1.0);
    assert_eq!(outcome(app, "text", "client_gone").await, 0.0);
    assert_eq!(m("chunkstream_chunks_sent_total", "text").await, 10.0);
    assert_eq!(m("chunkstream_chunks_sent_total", "sse").await, 4.0 + 1.0);
    assert_eq!(m("chunkstream_open_streams", "text").await, 0.0);
    // Every series of the contract (API.md, its names written out here) is there from the
    // start, at zero if nothing happened.
    let all = app.metrics().await;
    for t in ["text", "sse", "ws", "jsonl", "wt"] {
        for name in ["chunkstream_open_streams", "chunkstream_chunks_sent_total"] {
            let key = format!("{name}{{transport=\"{t}\"}}");
            assert!(all.contains_key(&key), "{key}");
        }
        for o in [
            "completed",
            "client_gone",
            "shutdown",
            "stopped",
            "rejected",
            "protocol_error",
            "stalled",
        ] {
            let key = format!("chunkstream_streams_total{{transport=\"{t}\",outcome=\"{o}\"}}");
            assert!(all.contains_key(&key), "{key}");
        }
    }
}

#[tokio::test]
async fn hundreds_of_vanishing_clients_leave_no_stream_open() {
    let app = spawn_app().await;
    let clients = 300;
    let mut bodies = Vec::new();
    for i in 0..clients {
        let path = if i % 2 == 0 {
            "/stream?count=100000&interval_ms=5"
        } else {
            "/stream/sse?count=100000&interval_ms=5"
        };
        // A client each, so every stream has its own connection to lose.
        let client = reqwest::Client::new();
        let resp = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.bytes_stream();
        body.next().await.unwrap().unwrap();
        bodies.push((client, body));
    }
    let open = || async {
        let all = app.metrics().await;
        all["chunkstream_open_streams{transport=\"text\"}"]
            + all["chunkstream_open_streams{transport=\"sse\"}"]
    };
    assert_eq!(open().await, clients as f64);
    let vanished = Instant::now();
    drop(bodies);
    wait_until(Duration::from_secs(1), "every stream to close", || async {
        open().await == 0.0
    })
    .await;
    assert!(vanished.elapsed() < Duration::from_secs(1));
    let sent = || async {
        let all = app.metrics().await;
        all["chunkstream_chunks_sent_total{transport=\"text\"}"]
            + all["chunkstream_chunks_sent_total{transport=\"sse\"}"]
    };
    let after = sent().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sent().await, after, "chunks still being sent");
}

#[test]
fn invalid_config_is_a_clear_error_not_a_panic() {
    /// (case, arguments, environment, what the error must name)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (
            "zero streams",
            &["--max-streams", "0"],
            &[],
            "--max-streams",
        ),
        ("bad address", &["--addr", "localhost"], &[], "--addr"),
        (
            "bad env",
            &[],
            &[("CHUNKSTREAM_SSE_RETRY_MS", "soon")],
            "--sse-retry-ms",
        ),
        (
            "bad origin",
            &["--allowed-origin", "example.com"],
            &[],
            "origin",
        ),
    ];
    for (case, args, envs, needle) in cases {
        let out = binary(args, envs).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
        assert!(stderr.contains(needle), "{case}: {stderr}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
    }
    // An address in use: a start-up error naming it, exit 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = binary(&["--addr", &addr], &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn help_explains_every_flag() {
    use clap::CommandFactory;
    let out = binary(&["--help"], &[]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let command = chunkstream::config::Cli::command();
    let flags = command
        .get_arguments()
        .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
        .filter_map(|arg| arg.get_long());
    for flag in flags {
        let env = format!(
            "CHUNKSTREAM_{}",
            flag.replace('-', "_").to_ascii_uppercase()
        );
        for needle in [format!("--{flag}"), env] {
            assert!(
                help.contains(&needle),
                "{needle} missing from --help:\n{help}"
            );
        }
    }
    assert!(help.contains("openapi"), "{help}");
}

#[test]
fn openapi_subcommand_prints_the_committed_document() {
    let out = binary(&["openapi"], &[]).output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap();
    assert!(
        out.stdout == committed,
        "run `cargo run -- openapi > openapi.json`"
    );
}

/// Sends `signal` (`TERM`, `INT`) to `process`.
fn kill(signal: &str, process: &Process) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &process.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_and_sigint_end_open_streams_cleanly_and_exit_zero() {
    for signal in ["TERM", "INT"] {
        let mut server = Binary::start(
            &["--addr", "127.0.0.1:0"],
            &[("RUST_LOG", "debug,hyper=trace")],
            None,
        )
        .await;
        let base = server.base.clone();
        let client = reqwest::Client::new();
        let open = |path: &str| {
            client
                .get(format!("{base}{path}?count=100&interval_ms=1000"))
                .send()
        };
        let mut text = open("/stream").await.unwrap().bytes_stream();
        let mut sse = open("/stream/sse").await.unwrap().bytes_stream();
        text.next().await.unwrap().unwrap();
        sse.next().await.unwrap().unwrap();

        let sent = Instant::now();
        kill(signal, &server.process);
        // Read both bodies to their end, keeping any error to report with the server's log.
        let mut sse_rest = Vec::new();
        let mut sse_error = None;
        while let Some(frame) = sse.next().await {
            match frame {
                Ok(bytes) => sse_rest.extend_from_slice(&bytes),
                Err(err) => sse_error = Some(format!("{err:?}")),
            }
        }
        let mut text_error = None;
        while let Some(frame) = text.next().await {
            if let Err(err) = frame {
                text_error = Some(format!("{err:?}"));
            }
        }
        let elapsed = sent.elapsed();
        let exit = server.process.wait_exit(Duration::from_secs(10)).await;
        let context = format!("SIG{signal}\n--- server log ---\n{}", server.log());
        // At start it said where everything is.
        for path in [
            "/docs",
            "/openapi.json",
            "/stream?",
            "/stream/sse?",
            "/stream/ws?",
        ] {
            assert!(server.log().contains(path), "{path} not logged\n{context}");
        }
        assert_eq!(sse_error, None, "SSE did not end cleanly\n{context}");
        assert_eq!(text_error, None, "text did not end cleanly\n{context}");
        assert!(!String::from_utf8_lossy(&sse_rest).contains("event: end"));
        assert_eq!(exit.code(), Some(0), "exit status\n{context}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}\n{context}");
    }
}

#[tokio::test]
async fn a_websocket_peer_that_reads_nothing_holds_shutdown_at_most_the_timeout() {
    let mut server = Binary::start(
        &["--addr", "127.0.0.1:0", "--shutdown-timeout-secs", "2"],
        &[("RUST_LOG", "info")],
        None,
    )
    .await;
    // A raw upgrade to a flat-out stream, then nothing read: the server's writes block.
    let tcp = raw_websocket(server.addr(), "/stream/ws?count=100000000").await;
    let base = server.base.clone();
    wait_until(
        Duration::from_secs(5),
        "the WebSocket stream to open",
        || async {
            let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap();
            metrics
                .text()
                .await
                .unwrap()
                .contains("chunkstream_open_streams{transport=\"ws\"} 1")
        },
    )
    .await;
    let sent = Instant::now();
    kill("TERM", &server.process);
    let exit = server.process.wait_exit(Duration::from_secs(10)).await;
    let elapsed = sent.elapsed();
    assert_eq!(exit.code(), Some(0), "{}", server.log());
    assert!(
        elapsed < Duration::from_millis(2500),
        "{elapsed:?}\n{}",
        server.log()
    );
    drop(tcp);
}

/// Server CPU time (user + system) so far, in clock ticks, from `/proc/<pid>/stat`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test]
async fn out_of_file_descriptors_accept_backs_off_and_recovers() {
    use std::sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const FD_LIMIT: usize = 64;
    let mut server = Binary::start(
        &["--addr", "127.0.0.1:0"],
        &[("RUST_LOG", "info")],
        Some(FD_LIMIT),
    )
    .await;
    let pid = server.process.0.id();
    let addr = server.addr().to_owned();
    // Roughly what is left for connections (tokio may still open a few of its own).
    let base_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let capacity = FD_LIMIT - base_fds;
    let extra = 12;

    // One client per socket: send a request, then count the bytes that come back.
    let mut clients = Vec::new();
    for _ in 0..capacity + extra {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(b"GET /stream/sse?count=100000&interval_ms=100 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = tcp.read(&mut buf).await {
                counter.fetch_add(n as u64, Ordering::SeqCst);
            }
        });
        clients.push((received, task));
    }
    let served = |clients: &[(Arc<AtomicU64>, tokio::task::JoinHandle<()>)]| {
        clients
            .iter()
            .filter(|(r, _)| r.load(Ordering::SeqCst) > 0)
            .count()
    };
    wait_until(
        Duration::from_secs(5),
        "the server to use up its descriptors",
        || {
            let n = served(&clients);
            async move { n + 4 >= capacity }
        },
    )
    .await;

    // Out of descriptors with clients waiting: no busy loop, and open streams keep flowing.
    let flowing = clients
        .iter()
        .find(|(r, _)| r.load(Ordering::SeqCst) > 0)
        .unwrap();
    let before = (cpu_ticks(pid), flowing.0.load(Ordering::SeqCst));
    tokio::time::sleep(Duration::from_secs(1)).await; // an observation window
    let after = (cpu_ticks(pid), flowing.0.load(Ordering::SeqCst));
    assert!(
        after.0 - before.0 < 20,
        "{} ticks of CPU in 1 s",
        after.0 - before.0
    );
    assert!(after.1 > before.1, "an open stream stopped flowing");
    let waiting = clients.len() - served(&clients);
    assert!(
        waiting >= extra - 4,
        "only {waiting} clients wait past the limit"
    );

    // Free some descriptors: the waiting clients are served.
    let mut freed = 0;
    for (received, task) in &clients {
        if freed < waiting + 2 && received.load(Ordering::SeqCst) > 0 {
            task.abort();
            freed += 1;
        }
    }
    wait_until(
        Duration::from_secs(5),
        "the waiting clients to be served",
        || {
            let waiting = clients
                .iter()
                .filter(|(r, t)| !t.is_finished() && r.load(Ordering::SeqCst) == 0)
                .count();
            async move { waiting == 0 }
        },
    )
    .await;
    server.process.terminate(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn environment_values_take_effect_in_the_binary() {
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};

    let mut server = Binary::start(
        &["--addr", "127.0.0.1:0"],
        &[
            ("RUST_LOG", "info"),
            ("CHUNKSTREAM_SSE_RETRY_MS", "250"),
            ("CHUNKSTREAM_MAX_STREAMS_PER_CLIENT", "1"),
            // Lists are comma-separated; the entries that matter here come second.
            ("CHUNKSTREAM_TRUSTED_PROXY", "10.9.9.9, 127.0.0.1"),
            (
                "CHUNKSTREAM_ALLOWED_ORIGIN",
                "https://a.example,https://b.example",
            ),
        ],
        None,
    )
    .await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let sse = client
        .get(format!("{base}/stream/sse?count=1"))
        .send()
        .await
        .unwrap();
    assert!(sse.text().await.unwrap().starts_with("retry: 250\n"));
    // A share of one stream: the second from this client is refused...
    let url = format!("{base}/stream?count=100&interval_ms=1000");
    let held = client.get(&url).send().await.unwrap();
    assert_eq!(held.status(), 200);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 429);
    // ...but one forwarded by a trusted proxy (127.0.0.1) is another client's.
    let forwarded = client
        .get(&url)
        .header("X-Forwarded-For", "198.51.100.9")
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), 200);
    drop((held, forwarded));
    // The second allowed origin opens a WebSocket; another is refused.
    for (origin, allowed) in [("https://b.example", true), ("https://c.example", false)] {
        let url = format!("ws://{}/stream/ws?count=1", server.addr());
        let mut request = url.into_client_request().unwrap();
        let value = HeaderValue::from_str(origin).unwrap();
        request.headers_mut().insert("origin", value);
        // Another client each time (the share is one stream).
        request
            .headers_mut()
            .insert("x-forwarded-for", HeaderValue::from_static("198.51.100.10"));
        let result = tokio_tungstenite::connect_async(request).await;
        match (result, allowed) {
            (Ok(_), true) => {}
            (Err(tokio_tungstenite::tungstenite::Error::Http(resp)), false) => {
                assert_eq!(resp.status(), 403, "{origin}");
            }
            (result, _) => panic!("{origin}: {result:?}"),
        }
    }
    server.process.terminate(Duration::from_secs(5)).await;
}
