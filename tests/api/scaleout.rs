//! Scale-out: two instances behind nginx with `deploy/nginx.conf` (the file users deploy),
//! streams through the proxy on both of its listeners (HTTP/1.1, and HTTPS with HTTP/2),
//! each forwarded client with its own share, and a rolling restart that an SSE client
//! survives on either. [`Deployment`] runs the file for the browser tests too.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chunkstream::streams::Transport;
use futures_util::StreamExt;
use tokio::sync::{Mutex, MutexGuard};
use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};

use crate::{
    eventsource::{Item, Parser},
    helpers::{Process, binary, needs, wait_until},
};

/// The ports `deploy/nginx.conf` names: plain HTTP, HTTPS, and the two instances.
pub const PROXY_PORT: u16 = 8080;
pub const TLS_PORT: u16 = 8443;
const INSTANCE_PORTS: [u16; 2] = [3001, 3002];

/// Streams one client may hold on each instance, in this test.
const SHARE: usize = 2;

/// One deployment at a time: they all listen on the ports the file names.
static ONE_DEPLOYMENT: Mutex<()> = Mutex::const_new(());

/// `deploy/nginx.conf` running as the README deploys it: two instances and nginx on the
/// file's ports, with a self-signed certificate made for the HTTPS listener. Everything
/// stops when it is dropped.
pub struct Deployment {
    /// The instances on 3001 and 3002 (see [`Deployment::restart`]).
    instances: [Process; 2],
    instance_args: Vec<String>,
    _nginx: Process,
    /// The certificate the HTTPS listener presents (PEM), to trust in a client.
    pub cert_pem: Vec<u8>,
    cert_path: PathBuf,
    _one: MutexGuard<'static, ()>,
}

/// An instance as the README deploys it behind nginx (which connects from 127.0.0.1).
fn instance(port: u16, args: &[String]) -> Process {
    let addr = format!("127.0.0.1:{port}");
    let mut all = vec!["--addr", &addr, "--trusted-proxy", "127.0.0.1"];
    all.extend(args.iter().map(String::as_str));
    Process(
        binary(&all, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chunkstream"),
    )
}

/// nginx, where Debian puts it or on the PATH.
pub fn nginx_binary() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

fn installed(program: &str, version_arg: &str) -> bool {
    Command::new(program)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A self-signed certificate for 127.0.0.1 and localhost, and its key, made by `openssl`
/// as the README shows.
fn make_certificate(dir: &Path) {
    std::fs::create_dir_all(dir).expect("a folder for the certificate");
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl made no certificate");
}

/// nginx on `deploy/nginx.conf`, in the prefix `prefix`. The file is linked from
/// `prefix/conf/` rather than copied, so this is the very file users deploy, and its
/// relative certificate paths (`tls/…`, next to it) find the certificate made for the test.
fn nginx(prefix: &Path) -> Process {
    for dir in ["logs", "tmp", "conf"] {
        std::fs::create_dir_all(prefix.join(dir)).unwrap();
    }
    let conf = prefix.join("conf/nginx.conf");
    std::os::unix::fs::symlink(
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx.conf"),
        &conf,
    )
    .expect("link deploy/nginx.conf");
    make_certificate(&prefix.join("conf/tls"));
    let stderr = std::fs::File::create(prefix.join("logs/stderr.log")).unwrap();
    Process(
        Command::new(nginx_binary())
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf)
            .args(["-e", "stderr", "-g", "daemon off;"])
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

impl Deployment {
    /// Starts the deployment, its instances with `instance_args` besides the README's, once
    /// every earlier one has stopped; `None` (the test skipped, saying why) without nginx or
    /// openssl, unless `CI` is set (see `helpers::needs`).
    pub async fn start(name: &str, instance_args: &[&str]) -> Option<Self> {
        if !needs("nginx", installed(nginx_binary(), "-v"))
            || !needs("openssl", installed("openssl", "version"))
        {
            return None;
        }
        let one = ONE_DEPLOYMENT.lock().await;
        for port in INSTANCE_PORTS.into_iter().chain([PROXY_PORT, TLS_PORT]) {
            assert!(
                std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "port {port} (named in deploy/nginx.conf) is in use"
            );
        }
        let prefix = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("nginx-{name}"));
        let _ = std::fs::remove_dir_all(&prefix);
        let instance_args: Vec<String> = instance_args.iter().map(|&a| a.to_owned()).collect();
        let instances = INSTANCE_PORTS.map(|port| instance(port, &instance_args));
        let nginx = nginx(&prefix);
        let cert_path = prefix.join("conf/tls/cert.pem");
        let cert_pem = std::fs::read(&cert_path).expect("the certificate");
        let deployment = Self {
            instances,
            instance_args,
            _nginx: nginx,
            cert_pem,
            cert_path,
            _one: one,
        };
        let https = deployment.https_client();
        wait_until(Duration::from_secs(10), "instances and nginx", || async {
            healthy(INSTANCE_PORTS[0]).await
                && healthy(INSTANCE_PORTS[1]).await
                && healthy(PROXY_PORT).await
                && https
                    .get(format!("https://127.0.0.1:{TLS_PORT}/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
        })
        .await;
        Some(deployment)
    }

    /// A client that trusts the deployment's certificate, and only it, and speaks HTTP/2
    /// where the server offers it (ALPN), as browsers do.
    pub fn https_client(&self) -> reqwest::Client {
        let cert = reqwest::Certificate::from_pem(&self.cert_pem).expect("a PEM certificate");
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(cert)
            .build()
            .expect("an HTTPS client")
    }

    /// The base64 SHA-256 of the certificate's public key, as Chromium's
    /// `--ignore-certificate-errors-spki-list` takes it: that one key is trusted.
    pub fn spki_sha256(&self) -> String {
        let script = "openssl x509 -in \"$1\" -pubkey -noout \
            | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64";
        let out = Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&self.cert_path)
            .output()
            .expect("run openssl");
        assert!(out.status.success(), "no SPKI hash from openssl");
        String::from_utf8(out.stdout)
            .expect("base64")
            .trim()
            .to_owned()
    }

    /// Restarts instance `i` (0 or 1): SIGTERM, clean exit, start again, healthy.
    pub async fn restart(&mut self, i: usize) {
        let port = INSTANCE_PORTS[i];
        self.instances[i].terminate(Duration::from_secs(3)).await;
        self.instances[i] = instance(port, &self.instance_args);
        wait_until(Duration::from_secs(10), "the instance to restart", || {
            healthy(port)
        })
        .await;
    }

    /// Stops both instances (SIGTERM, clean exits).
    pub async fn stop_instances(&mut self) {
        for process in &mut self.instances {
            process.terminate(Duration::from_secs(3)).await;
        }
    }

    /// One series of `/metrics`, summed over both instances.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let key = format!("{name}{{{}}}", labels.join(","));
        let mut sum = 0.0;
        for port in INSTANCE_PORTS {
            let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
                .await
                .expect("an instance's metrics")
                .text()
                .await
                .expect("metrics text");
            sum += crate::helpers::series(&text)
                .get(&key)
                .unwrap_or_else(|| panic!("no series {key}"));
        }
        sum
    }
}

/// What an `EventSource` does: read events, and when the connection ends without `end`,
/// wait the announced `retry` delay and reconnect with `Last-Event-ID`. Any status but
/// 200 or 204 would make a browser give up, so it fails the test, and so does a response in
/// another HTTP version than `version` (nginx's listener decides it).
/// Returns the chunk indexes received and the number of connections made.
async fn event_source(
    client: reqwest::Client,
    version: reqwest::Version,
    url: String,
    progress: Arc<AtomicU64>,
) -> (Vec<u64>, u32) {
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
        assert_eq!(resp.version(), version, "connection {connections}");
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

/// An SSE client (`client`, expecting responses in `version`) streams `base`'s
/// `/stream/sse` while both instances restart one after the other, and gets exactly
/// `0..count`, over more than one connection.
async fn sse_rides_through_a_rolling_restart(
    deployment: &mut Deployment,
    client: reqwest::Client,
    version: reqwest::Version,
    base: &str,
) {
    let count = 100;
    let progress = Arc::new(AtomicU64::new(0));
    let url = format!("{base}/stream/sse?count={count}&interval_ms=50");
    let client = tokio::spawn(event_source(client, version, url, progress.clone()));
    wait_until(Duration::from_secs(5), "the first chunks", || async {
        progress.load(Ordering::SeqCst) >= 10
    })
    .await;
    deployment.restart(0).await;
    deployment.restart(1).await;
    let (got, connections) = tokio::time::timeout(Duration::from_secs(30), client)
        .await
        .expect("the stream completes")
        .unwrap();
    assert_eq!(
        got,
        (0..count).collect::<Vec<u64>>(),
        "{version:?}: no gap, no duplicate"
    );
    assert!(
        connections >= 2,
        "{version:?}: the restarts cut the stream at least once"
    );
}

/// Times from the request to each chunk's arrival, for a stream of `count` lines/events/frames,
/// through `base` (`http://…` or `https://…`; a WebSocket only through plain HTTP).
async fn arrival_times(
    client: &reqwest::Client,
    base: &str,
    transport: Transport,
    count: usize,
) -> Vec<Duration> {
    let query = format!("count={count}&interval_ms=400");
    let path = transport.path();
    let sent = Instant::now();
    let mut times = Vec::new();
    if transport == Transport::Ws {
        let ws_base = base.replacen("http", "ws", 1);
        let url = format!("{ws_base}{path}?{query}");
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(_) = msg {
                times.push(sent.elapsed());
            }
        }
    } else {
        let url = format!("{base}{path}?{query}");
        let resp = client.get(url).send().await.unwrap();
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

/// [`arrival_times`] of a paced SSE stream asked for in gzip: each event decoded as it
/// arrives, which it can only be if nothing on the way holds compressed bytes back.
async fn gzip_arrival_times(client: &reqwest::Client, base: &str, count: usize) -> Vec<Duration> {
    let url = format!("{base}/stream/sse?count={count}&interval_ms=400");
    let sent = Instant::now();
    let resp = client
        .get(url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-encoding"],
        "gzip",
        "passed through, not redone"
    );
    let mut decoder = crate::compression::Gunzip::new();
    let mut body = resp.bytes_stream();
    let mut times = Vec::new();
    while let Some(bytes) = body.next().await {
        let text = String::from_utf8_lossy(decoder.feed(&bytes.unwrap())).into_owned();
        while times.len() < text.matches("Data Chunk").count() {
            times.push(sent.elapsed());
        }
    }
    times
}

/// Chunks arrive as they are made: the first at once, the last two intervals later.
fn assert_unbuffered(what: &str, times: &[Duration]) {
    assert_eq!(times.len(), 3, "{what}");
    assert!(times[0] < Duration::from_millis(300), "{what}: {times:?}");
    assert!(
        times[2] - times[0] >= Duration::from_millis(700),
        "{what}: {times:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_survive_a_rolling_restart_behind_nginx() {
    let share = SHARE.to_string();
    let args = ["--sse-retry-ms", "100", "--max-streams-per-client", &share];
    let Some(mut deployment) = Deployment::start("scaleout", &args).await else {
        return;
    };
    let http = format!("http://127.0.0.1:{PROXY_PORT}");
    let https = format!("https://127.0.0.1:{TLS_PORT}");
    let h2 = deployment.https_client();

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

    // Every transport streams through the proxy, nothing buffered: on the plain listener,
    // and every HTTP transport over HTTP/2 on the TLS one (the WebSocket over TLS is the
    // browser tests' part, in `browser/edge.rs`).
    let plain = reqwest::Client::new();
    for transport in Transport::ALL {
        if !transport.over_tcp() {
            // WebTransport is HTTP/3 on the server's own UDP port: nginx cannot proxy it.
            continue;
        }
        let times = arrival_times(&plain, &http, transport, 3).await;
        assert_unbuffered(&format!("{transport:?} over HTTP/1.1"), &times);
        if transport != Transport::Ws {
            let times = arrival_times(&h2, &https, transport, 3).await;
            assert_unbuffered(&format!("{transport:?} over HTTP/2"), &times);
        }
    }
    // A compressed stream too: nginx passes the client's Accept-Encoding on, and the
    // server's flushed gzip frames back, on both listeners.
    let times = gzip_arrival_times(&plain, &http, 3).await;
    assert_unbuffered("gzip SSE over HTTP/1.1", &times);
    let times = gzip_arrival_times(&h2, &https, 3).await;
    assert_unbuffered("gzip SSE over HTTP/2", &times);
    let resp = h2.get(format!("{https}/healthz")).send().await.unwrap();
    assert_eq!(
        resp.version(),
        reqwest::Version::HTTP_2,
        "ALPN chose HTTP/2"
    );

    // Clients are told apart by the address nginx forwards: each one has its own share. (Every
    // 127.0.0.0/8 address is loopback, so each client below connects from its own.)
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let (first, second) = (from("127.0.0.2"), from("127.0.0.3"));
    let url = format!("{http}/stream?count=100&interval_ms=1000");
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

    // An SSE client rides through a rolling restart of both instances, on either listener:
    // over HTTP/2 the cut ends one stream of a connection that stays, and the next request
    // (with Last-Event-ID) is another stream of it.
    let http1 = reqwest::Client::new();
    sse_rides_through_a_rolling_restart(&mut deployment, http1, reqwest::Version::HTTP_11, &http)
        .await;
    sse_rides_through_a_rolling_restart(&mut deployment, h2, reqwest::Version::HTTP_2, &https)
        .await;

    // WebSocket clients of a stopped instance are told it is going away (1001).
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let url = format!("ws://127.0.0.1:{PROXY_PORT}/stream/ws?count=1000&interval_ms=100");
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let first = ws.next().await.unwrap().unwrap();
        assert!(first.is_text(), "{first:?}");
        sockets.push(ws);
    }
    deployment.stop_instances().await;
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

/// Time to the first chunk of a paced SSE stream three ways, in turn, in the same run: from
/// an instance directly (HTTP/1.1), through nginx on its plain listener (HTTP/1.1), and
/// through its HTTPS listener (HTTP/2); each over a connection kept open, as a browser's is.
/// BENCHMARKS.md, "First chunk through the HTTPS listener", has the figures; run it with
/// `cargo test --release --test api first_chunk -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (about two minutes): run it by name with --ignored"]
async fn first_chunk_through_the_https_listener_measured() {
    /// Rounds measured, after as many again to warm up connections and caches.
    const ROUNDS: usize = 400;
    let Some(deployment) = Deployment::start("first-chunk", &[]).await else {
        return;
    };
    let ways = [
        (
            "instance directly, HTTP/1.1",
            reqwest::Client::new(),
            format!("http://127.0.0.1:{}", INSTANCE_PORTS[0]),
            reqwest::Version::HTTP_11,
        ),
        (
            "nginx :8080, HTTP/1.1",
            reqwest::Client::new(),
            format!("http://127.0.0.1:{PROXY_PORT}"),
            reqwest::Version::HTTP_11,
        ),
        (
            "nginx :8443, HTTPS + HTTP/2",
            deployment.https_client(),
            format!("https://127.0.0.1:{TLS_PORT}"),
            reqwest::Version::HTTP_2,
        ),
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(ROUNDS); ways.len()];
    for round in 0..2 * ROUNDS {
        // Each way goes first in a third of the rounds.
        for i in (0..ways.len()).map(|i| (i + round) % ways.len()) {
            let (name, client, base, version) = &ways[i];
            let sent = Instant::now();
            let resp = client
                .get(format!("{base}/stream/sse?count=2&interval_ms=50"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(resp.version(), *version, "{name}");
            let mut body = resp.bytes_stream();
            let first = body.next().await.expect("a first frame").expect("bytes");
            let elapsed = sent.elapsed();
            // Paced: the first chunk comes alone, the second one interval later.
            let first = String::from_utf8_lossy(&first);
            assert!(
                first.contains("Data Chunk 0") && !first.contains("Data Chunk 1"),
                "{name}: the first chunk alone, unbuffered: {first:?}"
            );
            // Read to the end, so that the connection is used again.
            while body.next().await.is_some() {}
            if round >= ROUNDS {
                samples[i].push(elapsed);
            }
        }
    }
    let quantile = |sorted: &[Duration], q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut medians = Vec::new();
    println!("time to the first chunk of /stream/sse?count=2&interval_ms=50, {ROUNDS} each:");
    for ((name, ..), mut times) in ways.iter().zip(samples) {
        times.sort();
        let (p50, p99) = (quantile(&times, 0.5), quantile(&times, 0.99));
        medians.push(p50);
        println!(
            "  {name:<30} p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            ms(p50),
            ms(p99),
            ms(times[times.len() - 1])
        );
    }
    println!(
        "  nginx adds (p50): {:.3} ms over HTTP/1.1, {:.3} ms over HTTPS + HTTP/2",
        ms(medians[1]) - ms(medians[0]),
        ms(medians[2]) - ms(medians[0])
    );
}
