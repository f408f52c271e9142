//! The WebTransport client of the `webtransport` scenario: what a page does, with
//! wtransport's client. `GET /stream/wt` (over HTTP/1.1) gives the session's URL and the
//! certificate's SHA-256; one client endpoint (one UDP socket, however many sessions) then
//! accepts that certificate by its hash, connects, accepts the first unidirectional stream
//! the server opens and counts its JSON lines with the same [`LineCounter`] as the other
//! routes.

use std::{
    net::SocketAddr,
    ops::ControlFlow,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use futures_util::StreamExt;
use tokio::{sync::watch, task::JoinSet, time::timeout};
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, VarInt, tls::Sha256Digest};

use crate::{
    client::{Collect, Conn, LineCounter, Sink},
    load::Window,
};

/// The read buffer of a chunk stream: as the TCP clients' flat-out reads.
const READ_BUF: usize = 256 * 1024;

/// What `GET /stream/wt` answered.
#[derive(Debug, serde::Deserialize)]
struct Connect {
    url: String,
    #[serde(rename = "serverCertificateHashes")]
    server_certificate_hashes: Vec<CertificateHash>,
}

/// One of its hashes.
#[derive(Debug, serde::Deserialize)]
struct CertificateHash {
    algorithm: String,
    value: String,
}

/// A client endpoint that opens sessions to one server.
pub struct Client {
    endpoint: Endpoint<wtransport::endpoint::endpoint_side::Client>,
    /// `https://HOST:PORT/stream/wt`, without a query.
    base: String,
}

/// One open session: its chunk stream accepted.
pub struct Session {
    connection: Connection,
    stream: RecvStream,
    buf: Box<[u8]>,
    /// When `connect` began.
    pub started: Instant,
    /// When the session was established (a page's `ready`).
    pub ready: Instant,
}

/// How a read of the chunk stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server finished the stream.
    Finished,
    /// The sink stopped.
    Stopped,
    /// The deadline passed.
    Deadline,
}

impl Client {
    /// Asks the server at `http` (its HTTP address) how to connect, and makes an endpoint
    /// that accepts its certificate. `Ok(None)`: the server serves no WebTransport (404).
    pub async fn new(http: SocketAddr) -> anyhow::Result<Option<Self>> {
        let mut conn = Conn::connect(http).await?;
        conn.get("/stream/wt?count=1", "").await?;
        let head = conn.read_head().await?;
        if head.status == 404 || head.status == 405 {
            return Ok(None);
        }
        ensure!(
            head.status == 200,
            "GET /stream/wt answered {}",
            head.status
        );
        let mut body = Collect::default();
        timeout(Duration::from_secs(10), conn.read_body(&mut body, None))
            .await
            .context("GET /stream/wt took over 10 s")??;
        let connect: Connect =
            serde_json::from_slice(&body.0).context("GET /stream/wt answered no session")?;
        let hashes = connect
            .server_certificate_hashes
            .iter()
            .map(digest)
            .collect::<anyhow::Result<Vec<_>>>()?;
        ensure!(
            !hashes.is_empty(),
            "the server presents a real certificate (--tls-cert); the bench accepts only its \
             own by hash"
        );
        let base = connect
            .url
            .split_once('?')
            .map_or(connect.url.as_str(), |(base, _)| base)
            .to_owned();
        let config = ClientConfig::builder()
            .with_bind_address(SocketAddr::from(([127, 0, 0, 1], 0)))
            .with_server_certificate_hashes(hashes)
            .build();
        Ok(Some(Self {
            endpoint: Endpoint::client(config)?,
            base,
        }))
    }

    /// Opens a session `?{query}` and accepts its chunk stream (within 30 s).
    pub async fn open(&self, query: &str) -> anyhow::Result<Session> {
        let url = format!("{}?{query}", self.base);
        let started = Instant::now();
        let open = async {
            let connection = self
                .endpoint
                .connect(&url)
                .await
                .with_context(|| format!("connect to {url}"))?;
            let ready = Instant::now();
            let stream = connection
                .accept_uni()
                .await
                .context("no chunk stream opened")?;
            anyhow::Ok(Session {
                connection,
                stream,
                buf: vec![0; READ_BUF].into_boxed_slice(),
                started,
                ready,
            })
        };
        timeout(Duration::from_secs(30), open)
            .await
            .context("no session within 30 s")?
    }
}

impl Session {
    /// Reads the chunk stream into `sink` until the server finishes it, the sink stops, or
    /// `deadline` passes (checked after every read). Bytes after a stop are dropped: a stop
    /// here is the end of what the caller reads.
    pub async fn read(
        &mut self,
        sink: &mut impl Sink,
        deadline: Option<Instant>,
    ) -> anyhow::Result<End> {
        loop {
            let read = self.stream.read(&mut self.buf);
            let read = match deadline {
                Some(at) => match tokio::time::timeout_at(at.into(), read).await {
                    Ok(read) => read,
                    Err(_) => return Ok(End::Deadline),
                },
                None => read.await,
            };
            match read.context("reading the chunk stream")? {
                None => return Ok(End::Finished),
                Some(n) => {
                    if let ControlFlow::Break(_) = sink.data(&self.buf[..n]) {
                        return Ok(End::Stopped);
                    }
                }
            }
            if deadline.is_some_and(|at| Instant::now() >= at) {
                return Ok(End::Deadline);
            }
        }
    }

    /// Closes the session (code 0), as a page's `transport.close()`.
    pub fn close(self) {
        self.connection.close(VarInt::from_u32(0), b"");
    }
}

/// `{"algorithm":"sha-256","value":"<base64>"}` → the digest.
fn digest(hash: &CertificateHash) -> anyhow::Result<Sha256Digest> {
    if hash.algorithm != "sha-256" {
        bail!("a certificate hash in {}, not sha-256", hash.algorithm);
    }
    let bytes = data_encoding::BASE64
        .decode(hash.value.as_bytes())
        .context("a certificate hash that is not base64")?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("a certificate hash that is not 32 bytes"))?;
    Ok(Sha256Digest::new(bytes))
}

/// Reads one whole session of `count` chunks; fails unless all came.
pub async fn whole_session(client: &Client, count: u64) -> anyhow::Result<()> {
    let mut session = client.open(&format!("count={count}")).await?;
    let mut lines = LineCounter::default();
    let end = timeout(Duration::from_secs(300), session.read(&mut lines, None))
        .await
        .context("a session took over 300 s")??;
    ensure!(
        end == End::Finished && lines.lines == count,
        "a session sent {} of {count} chunks ({end:?})",
        lines.lines
    );
    session.close();
    Ok(())
}

/// Time from `connect` to the first chunk, and from `ready` to it, of a session `?{query}`.
pub async fn first_chunk(client: &Client, query: &str) -> anyhow::Result<(Duration, Duration)> {
    let run = async {
        let mut session = client.open(query).await?;
        let mut first = LineCounter {
            stop_after: 1,
            ..LineCounter::default()
        };
        let end = session.read(&mut first, None).await?;
        let at = Instant::now();
        ensure!(
            end == End::Stopped,
            "the session ended before its first chunk"
        );
        let took = (at - session.started, at - session.ready);
        session.close();
        Ok(took)
    };
    timeout(Duration::from_secs(10), run)
        .await
        .context("no first chunk within 10 s")?
}

/// `conns` whole sessions of `count` chunks read at once, flat out: chunks per second, and
/// the server's CPU over the whole of it per chunk (as [`whole_streams`](crate::load::whole_streams) for the
/// TCP routes).
pub async fn whole_sessions(
    client: &Client,
    count: u64,
    conns: usize,
    cpu: impl Fn() -> Option<Duration>,
) -> anyhow::Result<Window> {
    let cpu_start = cpu();
    let started = Instant::now();
    let reads =
        futures_util::future::join_all((0..conns).map(|_| whole_session(client, count))).await;
    let secs = started.elapsed().as_secs_f64();
    let cpu_end = cpu();
    for read in reads {
        read?;
    }
    let total = count * conns as u64;
    Ok(Window::measured(
        total,
        secs,
        (cpu_start, cpu_end),
        "identity",
    ))
}

/// What holding many paced sessions showed.
#[derive(Debug, Default, serde::Serialize)]
pub struct Held {
    /// Sessions open and alive until the end.
    pub held: usize,
    /// Sessions that failed to open or broke.
    pub failed: usize,
    /// Server RSS before, KiB.
    pub rss_before_kib: u64,
    /// Server RSS with all sessions open, at the end of the hold, KiB.
    pub rss_held_kib: u64,
    /// Server CPU over the hold, % of one core.
    pub cpu_held_pct: f64,
    /// How long opening all of them took.
    pub ramp_secs: f64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

/// Opens `n` sessions paced `interval` apart on one client endpoint (at most 50 connecting
/// at once: each is a QUIC and TLS handshake), each once its first chunk came; holds them all
/// for `hold`, reading; then closes them.
pub async fn held(
    client: &Client,
    n: usize,
    interval: Duration,
    hold: Duration,
    rss: impl Fn() -> Option<u64>,
    cpu: impl Fn() -> Option<Duration>,
) -> anyhow::Result<Held> {
    let mut held = Held {
        rss_before_kib: rss().unwrap_or(0),
        ..Held::default()
    };
    let query = format!("count=100000000&interval_ms={}", interval.as_millis());
    let ramp = Instant::now();
    let opened = futures_util::stream::iter(0..n)
        .map(|_| async {
            let mut session = client.open(&query).await?;
            let mut first = LineCounter {
                stop_after: 1,
                ..LineCounter::default()
            };
            let end = timeout(Duration::from_secs(30), session.read(&mut first, None))
                .await
                .context("no first chunk within 30 s")??;
            ensure!(end == End::Stopped, "a paced session ended at once");
            anyhow::Ok(session)
        })
        .buffer_unordered(50)
        .collect::<Vec<_>>()
        .await;
    held.ramp_secs = ramp.elapsed().as_secs_f64();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for session in opened {
        let mut session = match session {
            Ok(session) => session,
            Err(e) => {
                held.failed += 1;
                held.first_error.get_or_insert_with(|| format!("{e:#}"));
                continue;
            }
        };
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let mut lines = LineCounter::default();
            tokio::select! {
                r = session.read(&mut lines, None) => {
                    r?;
                    bail!("a paced session ended early");
                }
                _ = stop.changed() => {}
            }
            session.close();
            anyhow::Ok(())
        });
    }
    let cpu_start = cpu();
    tokio::time::sleep(hold).await;
    held.cpu_held_pct = match (cpu_start, cpu()) {
        (Some(a), Some(b)) => (b - a).as_secs_f64() / hold.as_secs_f64() * 100.0,
        _ => 0.0,
    };
    held.rss_held_kib = rss().unwrap_or(0);
    let _ = stop_tx.send(true);
    while let Some(result) = tasks.join_next().await {
        match result? {
            Ok(()) => held.held += 1,
            Err(e) => {
                held.failed += 1;
                held.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_hash_is_read_from_base64() {
        let hash = CertificateHash {
            algorithm: "sha-256".to_owned(),
            value: data_encoding::BASE64.encode(&[7; 32]),
        };
        assert_eq!(digest(&hash).expect("a digest").as_ref(), &[7; 32]);
        let short = CertificateHash {
            algorithm: "sha-256".to_owned(),
            value: data_encoding::BASE64.encode(&[7; 31]),
        };
        assert!(digest(&short).is_err());
    }
}
