//! Scale-out: two instances behind nginx with `deploy/nginx.conf` (the file users deploy),
//! streams through the proxy, each forwarded client with its own share, and a rolling
//! restart that an SSE client survives.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chunkstream::transport::Transport;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};

use crate::{
    eventsource::{Item, Parser},
    helpers::{Process, binary, needs, wait_until},
};

/// The ports `deploy/nginx.conf` names.
const PROXY_PORT: u16 = 8080;
const INSTANCE_PORTS: [u16; 2] = [3001, 3002];

/// Streams one client may hold on each instance, in this test.
const SHARE: usize = 2;

/// An instance as the README deploys it behind nginx (which connects from 127.0.0.1).
fn instance(port: u16) -> Process {
    Process(
        binary(
            &[
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--sse-retry-ms",
                "100",
                "--trusted-proxy",
                "127.0.0.1",
                "--max-streams-per-client",
                &SHARE.to_string(),
            ],
            &[],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chunkstream"),
    )
}

fn nginx_binary() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

fn nginx(prefix: &Path) -> Process {
    for dir in ["logs", "tmp"] {
        std::fs::create_dir_all(prefix.join(dir)).unwrap();
    }
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx.conf");
    let stderr = std::fs::File::create(prefix.join("logs/stderr.log")).unwrap();
    Process(
        Command::new(nginx_binary())
            .arg("-p")
            .arg(prefix)
            .args(["-c", conf, "-e", "stderr", "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start nginx"),
    )
}

async fn healthy(port: u16) -> bool {
    reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .is_ok_and(|r| r.status() == 200)
}

/// Restarts the instance on `port`: SIGTERM, clean exit, start again, healthy.
async fn restart(process: &mut Process, port: u16) {
    process.terminate(Duration::from_secs(3)).await;
    *process = instance(port);
    wait_until(Duration::from_secs(10), "the instance to restart", || {
        healthy(port)
    })
    .await;
}

/// What an `EventSource` does: read events, and when the connection ends without `end`,
/// wait the announced `retry` delay and reconnect with `Last-Event-ID`. Any status but
/// 200 or 204 would make a browser give up, so it fails the test.
/// Returns the chunk indexes received and the number of connections made.
async fn event_source(url: String, progress: Arc<AtomicU64>) -> (Vec<u64>, u32) {
    let client = reqwest::Client::new();
    let opened = Instant::now();
    let (mut last_id, mut retry) = (String::new(), Duration::from_secs(1));
    let (mut got, mut connections) = (Vec::new(), 0);
    loop {
        let mut req = client.get(&url);
        if !last_id.is_empty() {
            req = req.header("Last-Event-ID", &last_id);
        }
        connections += 1;
        // nginx stays up and tries the other instance: a request it cannot answer is a
        // failure of the deployment, not a cut to ride through.
        let resp = req
            .send()
            .await
            .unwrap_or_else(|err| panic!("connection {connections} failed: {err}"));
        match resp.status().as_u16() {
            200 => {}
            204 => return (got, connections),
            status => panic!("an EventSource would give up on {status}"),
        }
        {
            let mut parser = Parser::default();
            let mut body = resp.bytes_stream();
            // A body cut by an instance stopping ends in an error: the cut to ride through.
            while let Some(Ok(bytes)) = body.next().await {
                for item in parser.feed(&bytes, opened.elapsed()) {
                    match item {
                        Item::Retry(ms) => retry = Duration::from_millis(ms),
                        Item::Event(e) if e.event == "end" => return (got, connections),
                        Item::Event(e) => {
                            let json: serde_json::Value = serde_json::from_str(&e.data).unwrap();
                            got.push(json["index"].as_u64().unwrap());
                            last_id = e.last_event_id;
                            progress.fetch_add(1, Ordering::SeqCst);
                        }
                        Item::Comment(..) => {}
                    }
                }
            }
        }
        // The reconnection delay is part of the protocol, not a synchronisation.
        tokio::time::sleep(retry).await;
    }
}

/// Times from the request to each chunk's arrival, for a stream of `count` lines/events/frames.
async fn arrival_times(transport: Transport, count: usize) -> Vec<Duration> {
    let query = format!("count={count}&interval_ms=400");
    let path = transport.path();
    let sent = Instant::now();
    let mut times = Vec::new();
    if transport == Transport::Ws {
        let url = format!("ws://127.0.0.1:{PROXY_PORT}{path}?{query}");
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(_) = msg {
                times.push(sent.elapsed());
            }
        }
    } else {
        let url = format!("http://127.0.0.1:{PROXY_PORT}{path}?{query}");
        let resp = reqwest::get(url).await.unwrap();
        assert_eq!(resp.status(), 200);
        // What each chunk writes once, whatever its wire format.
        let marker = "Data Chunk";
        let mut body = resp.bytes_stream();
        let mut text = String::new();
        while let Some(bytes) = body.next().await {
            text.push_str(std::str::from_utf8(&bytes.unwrap()).unwrap());
            while times.len() < text.matches(marker).count() {
                times.push(sent.elapsed());
            }
        }
    }
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_survive_a_rolling_restart_behind_nginx() {
    let installed = Command::new(nginx_binary()).arg("-v").output().is_ok();
    if !needs("nginx", installed) {
        return;
    }
    for port in INSTANCE_PORTS.into_iter().chain([PROXY_PORT]) {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} (named in deploy/nginx.conf) is in use"
        );
    }
    let prefix = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("nginx");
    let _ = std::fs::remove_dir_all(&prefix);
    let mut a = instance(INSTANCE_PORTS[0]);
    let mut b = instance(INSTANCE_PORTS[1]);
    let _proxy = nginx(&prefix);
    wait_until(Duration::from_secs(10), "instances and nginx", || async {
        healthy(INSTANCE_PORTS[0]).await
            && healthy(INSTANCE_PORTS[1]).await
            && healthy(PROXY_PORT).await
    })
    .await;

    // A browser's WebSocket from the page's own origin is let through the proxy (the
    // forwarded host is believed from nginx); one from a foreign page is refused.
    for (origin, allowed) in [
        (format!("http://127.0.0.1:{PROXY_PORT}"), true),
        ("http://evil.example".to_owned(), false),
    ] {
        use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};
        let url = format!("ws://127.0.0.1:{PROXY_PORT}/stream/ws?count=1");
        let mut request = url.into_client_request().unwrap();
        let value = HeaderValue::from_str(&origin).unwrap();
        request.headers_mut().insert("origin", value);
        match tokio_tungstenite::connect_async(request).await {
            Ok(_) => assert!(allowed, "{origin} was let in"),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert!(!allowed, "{origin}: {}", resp.status());
                assert_eq!(resp.status(), 403, "{origin}");
            }
            Err(err) => panic!("{origin}: {err}"),
        }
    }

    // Every transport streams through the proxy: nothing is buffered.
    for transport in Transport::ALL {
        let times = arrival_times(transport, 3).await;
        assert_eq!(times.len(), 3, "{transport:?}");
        assert!(
            times[0] < Duration::from_millis(300),
            "{transport:?}: {times:?}"
        );
        assert!(
            times[2] - times[0] >= Duration::from_millis(700),
            "{transport:?}: {times:?}"
        );
    }

    // Clients are told apart by the address nginx forwards: each one has its own share. (Every
    // 127.0.0.0/8 address is loopback, so each client below connects from its own.)
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let (first, second) = (from("127.0.0.2"), from("127.0.0.3"));
    let url = format!("http://127.0.0.1:{PROXY_PORT}/stream?count=100&interval_ms=1000");
    let mut held = Vec::new();
    // nginx takes turns between the two instances: a share on each.
    for _ in 0..2 * SHARE {
        let resp = first.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "within the first client's share");
        held.push(resp);
    }
    let refused = first.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 429, "past the first client's share");
    let resp = second.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the second client has its own share");
    drop((held, resp));

    // An SSE client rides through a rolling restart of both instances.
    let progress = Arc::new(AtomicU64::new(0));
    let url = format!("http://127.0.0.1:{PROXY_PORT}/stream/sse?count=100&interval_ms=50");
    let client = tokio::spawn(event_source(url, progress.clone()));
    wait_until(Duration::from_secs(5), "the first chunks", || async {
        progress.load(Ordering::SeqCst) >= 10
    })
    .await;
    restart(&mut a, INSTANCE_PORTS[0]).await;
    restart(&mut b, INSTANCE_PORTS[1]).await;
    let (got, connections) = tokio::time::timeout(Duration::from_secs(30), client)
        .await
        .expect("the stream completes")
        .unwrap();
    assert_eq!(got, (0..100).collect::<Vec<u64>>(), "no gap, no duplicate");
    assert!(
        connections >= 2,
        "the restarts cut the stream at least once"
    );

    // WebSocket clients of a stopped instance are told it is going away (1001).
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let url = format!("ws://127.0.0.1:{PROXY_PORT}/stream/ws?count=1000&interval_ms=100");
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let first = ws.next().await.unwrap().unwrap();
        assert!(first.is_text(), "{first:?}");
        sockets.push(ws);
    }
    a.terminate(Duration::from_secs(3)).await;
    b.terminate(Duration::from_secs(3)).await;
    for mut ws in sockets {
        let close = loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
    }
}
