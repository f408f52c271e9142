//! `spawn_app()`: a real server on 127.0.0.1:0, and what tests need to talk to it.

use std::{
    collections::HashMap,
    future::Future,
    io,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::Once,
    time::{Duration, Instant},
};

use chunkstream::{
    app::Application,
    config::{Config, WebTransport},
    streams::Metrics,
};
use tokio::{sync::oneshot, task::JoinHandle};

/// A running server. Dropping it shuts the server down.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where it serves WebTransport (UDP), unless that is off.
    pub wt: Option<SocketAddr>,
    /// A client for plain HTTP requests.
    pub client: reqwest::Client,
    /// The server's metrics, readable after it has stopped too.
    pub recorder: Metrics,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<io::Result<()>>>,
}

/// Logs go to the terminal only when `TEST_LOG` is set.
fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()),
                ))
                .with_test_writer()
                .init();
        }
    });
}

/// A server with the default configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server whose configuration `configure` adjusts (the address is always 127.0.0.1:0).
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let addr = "127.0.0.1:0".parse().expect("loopback address");
    spawn_app_at(addr, configure).await
}

/// A server on `addr`: to start a successor on the address of one that was shut down
/// (the port is free again once its shutdown has returned).
///
/// WebTransport listens on a UDP port of its own choosing (port 0), not on the TCP port's
/// number as by default: a free TCP port says nothing of the same UDP port, which a test
/// running beside may hold. `configure` may still turn it off or place it; the default
/// (`on`) is the real binary's, tested there.
pub async fn spawn_app_at(addr: SocketAddr, configure: impl FnOnce(&mut Config)) -> TestApp {
    init_tracing();
    let mut config = Config {
        webtransport: WebTransport::At(SocketAddr::new(addr.ip(), 0)),
        ..Config::default()
    };
    configure(&mut config);
    config.addr = addr;
    let app = Application::bind(config)
        .await
        .expect("bind the test address");
    let addr = app.local_addr();
    let wt = app.webtransport_addr();
    let recorder = app.streams().metrics().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        wt,
        client: reqwest::Client::new(),
        recorder,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Every series of `/metrics`, keyed by `name{labels}` as rendered.
    pub async fn metrics(&self) -> HashMap<String, f64> {
        let text = self
            .get("/metrics")
            .await
            .text()
            .await
            .expect("metrics body");
        series(&text)
    }

    /// One series, e.g. `metric("chunkstream_open_streams", &[("transport", "text")])`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let key = format!("{name}{{{}}}", labels.join(","));
        *self
            .metrics()
            .await
            .get(&key)
            .unwrap_or_else(|| panic!("no series {key}"))
    }

    /// Signals shutdown and waits for the server to stop.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let server = self.server.take().expect("server handle");
        server.await.expect("server task did not panic")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Every series of a Prometheus text, keyed by `name{labels}` as rendered.
pub fn series(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Polls `condition` until it holds, failing the test after `deadline`.
pub async fn wait_until<F, Fut>(deadline: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if condition().await {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The real `chunkstream` binary with `args` and extra `envs` (and no inherited `RUST_LOG`).
pub fn binary(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chunkstream"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .envs(envs.iter().copied())
        .stdin(Stdio::null());
    cmd
}

/// A child process, stopped if the test ends early.
pub struct Process(pub Child);

impl Drop for Process {
    /// SIGTERM first (SIGKILL on nginx's master would orphan its workers, still listening),
    /// SIGKILL only if that does not end it within a few seconds.
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(3) {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl Process {
    /// Sends SIGTERM and waits (at most `deadline`) for a clean exit.
    pub async fn terminate(&mut self, deadline: Duration) {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let status = self.wait_exit(deadline).await;
        assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    }

    /// Waits at most `deadline` for the process to exit, failing the test after it.
    pub async fn wait_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < deadline, "no exit within {deadline:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// `chunkstream_streams_total{transport, outcome}`: streams of `transport` ended with
/// `outcome` (the series must exist).
pub async fn outcome(app: &TestApp, transport: &str, outcome: &str) -> f64 {
    app.metric(
        "chunkstream_streams_total",
        &[("transport", transport), ("outcome", outcome)],
    )
    .await
}

/// A raw connection to `app`, for what a well-behaved client library would not send.
pub async fn raw(app: &TestApp) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect")
}

/// Reads (and keeps) what the server sends until it closes the connection, failing the test
/// if that takes longer than `deadline`. A reset counts as closed.
pub async fn read_until_closed(
    tcp: &mut (impl tokio::io::AsyncRead + Unpin),
    deadline: Duration,
) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let read = async {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n @ 1..) = tcp.read(&mut buf).await {
            received.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or_else(|_| panic!("the connection still open after {deadline:?}"));
    received
}

/// The real binary, running: stopped when dropped.
pub struct Binary {
    /// The process.
    pub process: Process,
    /// `http://host:port`, as the server logged it at start.
    pub base: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Binary {
    /// Starts the binary with `args` and `envs`, at most `fd_limit` open files if given, and
    /// waits for the URL it logs at start. Its log is kept (see [`Binary::log`]).
    pub async fn start(args: &[&str], envs: &[(&str, &str)], fd_limit: Option<usize>) -> Self {
        let mut cmd = match fd_limit {
            Some(limit) => {
                let bin = env!("CARGO_BIN_EXE_chunkstream");
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {limit} && exec {bin} \"$@\""))
                    .arg("chunkstream")
                    .args(args)
                    .env_remove("RUST_LOG")
                    .envs(envs.iter().copied())
                    .stdin(Stdio::null());
                sh
            }
            None => binary(args, envs),
        };
        let mut child = cmd
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chunkstream");
        let stderr = child.stderr.take().expect("piped stderr");
        let process = Process(child);
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (base_tx, base_rx) = oneshot::channel();
        let kept = log.clone();
        // Drains the log for the process's whole life, so the server never blocks on it.
        tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut base_tx = Some(base_tx);
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(at) = line.find("http://")
                    && let Some(tx) = base_tx.take()
                {
                    let url = &line[at..];
                    let end = url[7..].find('/').map_or(url.len(), |i| i + 7);
                    let _ = tx.send(url[..end].to_owned());
                }
                let mut log = kept.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let base = tokio::time::timeout(Duration::from_secs(10), base_rx)
            .await
            .ok()
            .and_then(Result::ok);
        let Some(base) = base else {
            // Give the log reader a moment to take the last lines of a server that exited.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while log.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
            let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
            panic!("the server logged no URL within 10 s; its log:\n{log}");
        };
        Self { process, base, log }
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.base["http://".len()..]
    }

    /// Everything the server has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Whether a test that needs an outside `tool` (Chromium, nginx) runs. When the tool is
/// missing it fails under `CI` (set by `./scripts/test.sh`, which installs the tools), and
/// is skipped with a printed reason otherwise, so that a plain `cargo test` passes on a
/// machine without them.
pub fn needs(tool: &str, installed: bool) -> bool {
    if installed {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{tool} is not installed: ./scripts/test.sh installs it"
    );
    // Written past the test harness's capture, so that the skip is seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {tool} is not installed (./scripts/test.sh installs it and runs this test)"
    );
    false
}

/// RFC 6455 §1.3's example `Sec-WebSocket-Key`, and the `Sec-WebSocket-Accept` it calls for.
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The accept key for [`WS_KEY`].
pub const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The headers of a valid WebSocket opening handshake (besides `Host`).
pub const WS_HANDSHAKE: [(&str, &str); 4] = [
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", WS_KEY),
];

/// Sends a request head by hand: `request_line` (e.g. `GET /stream/ws HTTP/1.1`), `Host:
/// host` and `headers`, for what a client library would not send.
pub async fn send_head(
    tcp: &mut tokio::net::TcpStream,
    host: &str,
    request_line: &str,
    headers: &[(&str, &str)],
) {
    use tokio::io::AsyncWriteExt;
    let mut head = format!("{request_line}\r\nHost: {host}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await.expect("request sent");
}

/// A response head: the status, and the headers by lower-case name.
#[derive(Debug)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// The headers, by lower-case name.
    pub headers: HashMap<String, String>,
}

/// Reads a response head, a byte at a time so that nothing after it is consumed.
pub async fn read_head(tcp: &mut tokio::net::TcpStream) -> Head {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    while !raw.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(Duration::from_secs(5), tcp.read_u8())
            .await
            .expect("a response in time")
            .expect("a response head");
        raw.push(byte);
    }
    let text = String::from_utf8(raw).expect("a text head");
    let mut lines = text.lines();
    let status_line = lines.next().expect("a status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Head { status, headers }
}

/// A raw connection to `addr` upgraded to the WebSocket at `path` (with its query) by a
/// valid handshake sent by hand; fails unless the answer is a 101 with the right accept
/// key. What the server sends next is left unread.
pub async fn raw_websocket(addr: &str, path: &str) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    send_head(
        &mut tcp,
        addr,
        &format!("GET {path} HTTP/1.1"),
        &WS_HANDSHAKE,
    )
    .await;
    let head = read_head(&mut tcp).await;
    assert_eq!(head.status, 101, "{head:?}");
    assert_eq!(head.headers["sec-websocket-accept"], WS_ACCEPT);
    tcp
}
