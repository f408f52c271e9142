//! The loads: one stream read flat out, many streams read flat out for a while or whole, a
//! wrk-style keep-alive request loop, thousands of held paced streams, first-chunk latency.
//! Each can ask for its streams compressed ([`Ask`]): they are then decoded as they arrive,
//! and a chunk counts once it has decoded.
//!
//! Every load is bounded in count and time and stops by itself.

use std::{
    net::SocketAddr,
    ops::ControlFlow,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use tokio::{
    sync::{Semaphore, watch},
    task::JoinSet,
    time::timeout,
};

use crate::client::{
    BodyEnd, Collect, Conn, ContentEncoding, FirstByte, Gunzip, Head, LineCounter, Sink,
    SseCounter, WS_CLOSE, WS_DEFLATE_OFFER, WsCounter, ws_upgrade_request,
};

/// The three transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /stream`.
    Text,
    /// `GET /stream/sse`.
    Sse,
    /// `GET /stream/ws`.
    Ws,
    /// `GET /stream/jsonl`.
    Jsonl,
}

impl Route {
    /// Every route.
    pub const ALL: [Route; 4] = [Route::Text, Route::Sse, Route::Ws, Route::Jsonl];

    /// The route's path.
    pub fn path(self) -> &'static str {
        match self {
            Route::Text => "/stream",
            Route::Sse => "/stream/sse",
            Route::Ws => "/stream/ws",
            Route::Jsonl => "/stream/jsonl",
        }
    }

    /// The status a working route answers with.
    fn ok_status(self) -> u16 {
        if self == Route::Ws { 101 } else { 200 }
    }

    /// A counter for what this route sends, as it is (no decoding).
    pub fn counter(self) -> Counter {
        let count = match self {
            Route::Text | Route::Jsonl => Count::Lines(LineCounter::default()),
            Route::Sse => Count::Sse(SseCounter::default()),
            Route::Ws => Count::Ws(WsCounter::default()),
        };
        Counter {
            count,
            gunzip: None,
            body_bytes: 0,
        }
    }

    /// The route's name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Route::Text => "text",
            Route::Sse => "SSE",
            Route::Ws => "WS",
            Route::Jsonl => "JSONL",
        }
    }
}

/// What a client asks for: the chunks as they are, or compressed in the way a browser
/// asks (`Accept-Encoding: gzip` over HTTP, [`WS_DEFLATE_OFFER`] on a WebSocket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// No `Accept-Encoding`, no extension offered.
    Identity,
    /// Compression offered.
    Compressed,
}

impl Ask {
    /// Both, identity first.
    pub const BOTH: [Ask; 2] = [Ask::Identity, Ask::Compressed];

    /// What this asks for on `route`, for tables.
    pub fn name(self, route: Route) -> &'static str {
        match (self, route) {
            (Ask::Identity, _) => "identity",
            (Ask::Compressed, Route::Ws) => "permessage-deflate",
            (Ask::Compressed, _) => "gzip",
        }
    }
}

/// What the server answered a request with: how the stream's bytes are encoded.
pub fn negotiated(head: Option<Head>) -> &'static str {
    match head {
        Some(h) if h.ws_deflate => "permessage-deflate",
        Some(h) => match h.encoding {
            ContentEncoding::Identity => "identity",
            ContentEncoding::Gzip => "gzip",
            ContentEncoding::Other => "other",
        },
        None => "none",
    }
}

/// Counts the chunks of any route, decoding them first when they come compressed.
#[derive(Debug)]
pub struct Counter {
    count: Count,
    gunzip: Option<Gunzip>,
    /// Body bytes taken, as sent (compressed or not; without HTTP's chunk framing).
    pub body_bytes: u64,
}

/// Counts the chunks of any route as they are.
#[derive(Debug)]
pub enum Count {
    /// Text lines.
    Lines(LineCounter),
    /// SSE chunk events.
    Sse(SseCounter),
    /// WebSocket messages.
    Ws(WsCounter),
}

impl Counter {
    /// A counter for the stream `conn` just opened: it decodes what the response head says
    /// the body is in.
    pub fn decoding(route: Route, conn: &Conn) -> anyhow::Result<Self> {
        let mut counter = route.counter();
        let Some(head) = conn.head else {
            return Ok(counter);
        };
        match head.encoding {
            ContentEncoding::Identity => {}
            ContentEncoding::Gzip => counter.gunzip = Some(Gunzip::new()),
            ContentEncoding::Other => bail!(
                "{} came in an encoding this client cannot decode",
                route.path()
            ),
        }
        if head.ws_deflate
            && let Count::Ws(ws) = &mut counter.count
        {
            *ws = WsCounter::deflate();
        }
        Ok(counter)
    }

    /// Chunks counted.
    pub fn chunks(&self) -> u64 {
        match &self.count {
            Count::Lines(c) => c.lines,
            Count::Sse(c) => c.events,
            Count::Ws(c) => c.texts,
        }
    }

    /// Bytes of the stream once decoded (the body or the messages' payload as they would
    /// be uncompressed).
    pub fn decoded_bytes(&self) -> u64 {
        match (&self.count, &self.gunzip) {
            (Count::Ws(ws), _) => ws.decoded_bytes,
            (_, Some(gunzip)) => gunzip.decoded_bytes,
            (_, None) => self.body_bytes,
        }
    }

    /// Bytes as sent: an HTTP body (without chunk framing), or the messages' payload.
    pub fn sent_bytes(&self) -> u64 {
        match &self.count {
            Count::Ws(ws) => ws.payload_bytes,
            _ => self.body_bytes,
        }
    }

    /// Why decoding failed, if it did.
    pub fn error(&self) -> Option<&'static str> {
        match (&self.count, &self.gunzip) {
            (Count::Ws(ws), _) => ws.error,
            (_, Some(gunzip)) => gunzip.error,
            _ => None,
        }
    }

    /// Stop (return `Break`) once this many chunks were counted; 0: never.
    fn stop_after(&mut self, n: u64) {
        match &mut self.count {
            Count::Lines(c) => c.stop_after = n,
            Count::Sse(c) => c.stop_after = n,
            Count::Ws(c) => c.stop_after = n,
        }
    }

    /// Records each chunk's arrival from now on.
    fn record(&mut self) {
        let arrivals = match &mut self.count {
            Count::Lines(c) => &mut c.arrivals,
            Count::Sse(c) => &mut c.arrivals,
            Count::Ws(c) => &mut c.arrivals,
        };
        arrivals.get_or_insert_with(Vec::new);
    }

    /// The arrival times recorded.
    fn into_arrivals(self) -> Vec<Instant> {
        match self.count {
            Count::Lines(c) => c.arrivals,
            Count::Sse(c) => c.arrivals,
            Count::Ws(c) => c.arrivals,
        }
        .unwrap_or_default()
    }
}

impl Sink for Count {
    fn data(&mut self, bytes: &[u8]) -> ControlFlow<usize> {
        match self {
            Count::Lines(c) => c.data(bytes),
            Count::Sse(c) => c.data(bytes),
            Count::Ws(c) => c.data(bytes),
        }
    }
}

impl Sink for Counter {
    fn data(&mut self, bytes: &[u8]) -> ControlFlow<usize> {
        let flow = match self.gunzip.as_mut() {
            Some(gunzip) => gunzip.feed(bytes, &mut self.count),
            None => self.count.data(bytes),
        };
        self.body_bytes += match flow {
            ControlFlow::Continue(()) => bytes.len(),
            ControlFlow::Break(used) => used,
        } as u64;
        flow
    }

    fn pending(&self) -> bool {
        self.gunzip.as_ref().is_some_and(Gunzip::pending)
    }
}

/// The route answered with something else than a stream.
#[derive(Debug)]
pub struct RouteMissing;

impl std::fmt::Display for RouteMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("route missing")
    }
}

impl std::error::Error for RouteMissing {}

/// Opens a stream of `route` with `query`: connects, requests, checks the status. A 404
/// or a missing upgrade is [`RouteMissing`].
pub async fn open(
    addr: SocketAddr,
    route: Route,
    query: &str,
    reset_on_close: bool,
    buf_size: usize,
) -> anyhow::Result<Conn> {
    open_asking(addr, route, query, Ask::Identity, reset_on_close, buf_size).await
}

/// [`open`], asking for the stream compressed or not (the head read says what came).
pub async fn open_asking(
    addr: SocketAddr,
    route: Route,
    query: &str,
    ask: Ask,
    reset_on_close: bool,
    buf_size: usize,
) -> anyhow::Result<Conn> {
    let mut conn = Conn::connect_with(addr, reset_on_close, buf_size)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    request_asking(&mut conn, route, query, ask).await?;
    Ok(conn)
}

/// Sends the request for `route` on an open connection and checks the answer's status.
async fn request(conn: &mut Conn, route: Route, query: &str) -> anyhow::Result<()> {
    request_asking(conn, route, query, Ask::Identity).await
}

/// [`request`], asking for the stream compressed or not.
async fn request_asking(
    conn: &mut Conn,
    route: Route,
    query: &str,
    ask: Ask,
) -> anyhow::Result<()> {
    let target = format!("{}?{query}", route.path());
    let compressed = ask == Ask::Compressed;
    match route {
        Route::Ws => {
            let offer = compressed.then_some(WS_DEFLATE_OFFER);
            conn.send(ws_upgrade_request(&target, offer).as_bytes())
                .await?
        }
        _ if compressed => conn.get(&target, "Accept-Encoding: gzip\r\n").await?,
        _ => conn.get(&target, "").await?,
    }
    let head = conn.read_head().await?;
    if head.status == route.ok_status() {
        return Ok(());
    }
    if head.status == 404 || head.status == 405 || route == Route::Ws {
        return Err(RouteMissing.into());
    }
    bail!("{} answered {}", route.path(), head.status)
}

/// Whether `route` is served at `addr`: `Ok(false)` when it is missing.
pub async fn route_exists(addr: SocketAddr, route: Route) -> anyhow::Result<bool> {
    let probe = async {
        let mut conn = open(addr, route, "count=1", false, 16 * 1024).await?;
        let mut counter = route.counter();
        conn.read_body(&mut counter, None).await?;
        ensure!(
            counter.chunks() == 1,
            "{}?count=1 sent {} chunks",
            route.path(),
            counter.chunks()
        );
        Ok(())
    };
    match timeout(Duration::from_secs(10), probe).await {
        Ok(Ok(())) => Ok(true),
        Ok(Err(e)) if e.is::<RouteMissing>() => Ok(false),
        Ok(Err(e)) => Err(e),
        Err(_) => bail!("{} did not answer a one-chunk stream in 10 s", route.path()),
    }
}

/// Reads one whole `/stream?count=count` and returns lines per second.
pub async fn text_rate(addr: SocketAddr, count: u64) -> anyhow::Result<f64> {
    line_rate(addr, Route::Text, count).await
}

/// Reads one whole stream of `count` lines of `route` (text or JSON Lines) and returns lines
/// per second.
pub async fn line_rate(addr: SocketAddr, route: Route, count: u64) -> anyhow::Result<f64> {
    let run = async {
        let mut conn = Conn::connect(addr).await?;
        let started = Instant::now();
        request(&mut conn, route, &format!("count={count}")).await?;
        let mut lines = LineCounter::default();
        conn.read_body(&mut lines, None).await?;
        let secs = started.elapsed().as_secs_f64();
        ensure!(lines.lines == count, "got {} of {count} lines", lines.lines);
        Ok(count as f64 / secs)
    };
    timeout(Duration::from_secs(120), run)
        .await
        .context("a 10 M-line stream took over 120 s")?
}

/// `conns` keep-alive connections each requesting `GET /stream` (defaults: 10 lines) in a
/// loop for `duration`, like `wrk -c conns`. Returns completed requests per second.
pub async fn request_loop(
    addr: SocketAddr,
    conns: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let mut open = Vec::with_capacity(conns);
    for _ in 0..conns {
        open.push(Conn::connect(addr).await?);
    }
    let started = Instant::now();
    let end = started + duration;
    let mut tasks = JoinSet::new();
    for mut conn in open {
        tasks.spawn(async move {
            let mut done = 0u64;
            while Instant::now() < end {
                request(&mut conn, Route::Text, "").await?;
                let mut lines = LineCounter::default();
                conn.read_body(&mut lines, None).await?;
                ensure!(
                    lines.lines == 10,
                    "a default stream sent {} lines",
                    lines.lines
                );
                done += 1;
            }
            anyhow::Ok(done)
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// What a flat-out load measured over its window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Chunks per second over all connections.
    pub rate: f64,
    /// Server CPU time per chunk, in ns, when known.
    pub cpu_ns_per_chunk: Option<f64>,
    /// How the server encoded the streams (the first one).
    pub negotiated: &'static str,
}

impl Window {
    /// `total` chunks in `secs`, with the server's CPU time read before and after.
    pub fn measured(
        total: u64,
        secs: f64,
        cpu: (Option<Duration>, Option<Duration>),
        negotiated: &'static str,
    ) -> Self {
        let cpu_ns_per_chunk = match cpu {
            (Some(a), Some(b)) if total > 0 => Some((b - a).as_secs_f64() * 1e9 / total as f64),
            _ => None,
        };
        Self {
            rate: total as f64 / secs,
            cpu_ns_per_chunk,
            negotiated,
        }
    }
}

/// `conns` streams of `route` (each `count={count}`) read flat out for `duration`,
/// counted only after a warm-up: while the connections open, the first ones fill their
/// socket buffers (megabytes on loopback), which must not count as throughput.
pub async fn flat_out(
    addr: SocketAddr,
    route: Route,
    count: u64,
    conns: usize,
    duration: Duration,
    cpu: impl Fn() -> Option<Duration>,
) -> anyhow::Result<Window> {
    flat_out_asking(addr, route, Ask::Identity, count, conns, duration, cpu).await
}

/// [`flat_out`], asking for the streams compressed or not; they are decoded as they come.
pub async fn flat_out_asking(
    addr: SocketAddr,
    route: Route,
    ask: Ask,
    count: u64,
    conns: usize,
    duration: Duration,
    cpu: impl Fn() -> Option<Duration>,
) -> anyhow::Result<Window> {
    const WARM_UP: Duration = Duration::from_millis(500);
    let mut open = Vec::with_capacity(conns);
    for _ in 0..conns {
        let query = format!("count={count}");
        open.push(open_asking(addr, route, &query, ask, false, 256 * 1024).await?);
    }
    let negotiated = negotiated(open.first().and_then(|c| c.head));
    let warm_end = Instant::now() + WARM_UP;
    let deadline = warm_end + duration;
    let mut tasks = JoinSet::new();
    for mut conn in open {
        tasks.spawn(async move {
            let mut counter = Counter::decoding(route, &conn)?;
            let end = conn.read_body(&mut counter, Some(warm_end)).await?;
            ensure!(
                end == BodyEnd::Deadline,
                "a {count}-chunk stream ended early{}",
                decode_error(&counter)
            );
            let before = counter.chunks();
            let end = conn.read_body(&mut counter, Some(deadline)).await?;
            ensure!(
                end == BodyEnd::Deadline,
                "a {count}-chunk stream ended early{}",
                decode_error(&counter)
            );
            if route == Route::Ws {
                let _ = conn.send(&WS_CLOSE).await;
            }
            anyhow::Ok(counter.chunks() - before)
        });
    }
    tokio::time::sleep_until(warm_end.into()).await;
    let cpu_start = cpu();
    tokio::time::sleep_until(deadline.into()).await;
    let cpu_end = cpu();
    let mut total = 0;
    while let Some(chunks) = tasks.join_next().await {
        total += chunks??;
    }
    Ok(Window::measured(
        total,
        duration.as_secs_f64(),
        (cpu_start, cpu_end),
        negotiated,
    ))
}

async fn open_stream(addr: SocketAddr, route: Route, query: &str) -> anyhow::Result<Conn> {
    open(addr, route, query, false, 256 * 1024).await
}

/// `: {why}` when the counter could not decode what came, for error messages.
fn decode_error(counter: &Counter) -> String {
    counter
        .error()
        .map(|why| format!(": {why}"))
        .unwrap_or_default()
}

/// Time from sending the request (on a connected socket) to the first chunk's bytes.
pub async fn first_chunk(addr: SocketAddr, route: Route, query: &str) -> anyhow::Result<Duration> {
    let run = async {
        let mut conn = Conn::connect(addr).await?;
        let started = Instant::now();
        request(&mut conn, route, query).await?;
        let end = match route {
            Route::Text => conn.read_body(&mut FirstByte, None).await?,
            _ => {
                let mut counter = route.counter();
                counter.stop_after(1);
                conn.read_body(&mut counter, None).await?
            }
        };
        ensure!(
            end == BodyEnd::Stopped,
            "the stream ended before its first chunk"
        );
        Ok(started.elapsed())
    };
    timeout(Duration::from_secs(10), run)
        .await
        .context("no first chunk within 10 s")?
}

/// Time from starting the TCP connect to the first chunk, and from the end of the answer's
/// head (a WebSocket's `101`) to it: the TCP twin of a WebTransport session's connect and
/// `ready` (`wt::first_chunk`).
pub async fn first_chunk_from_connect(
    addr: SocketAddr,
    route: Route,
    query: &str,
) -> anyhow::Result<(Duration, Duration)> {
    let run = async {
        let started = Instant::now();
        let mut conn = Conn::connect(addr).await?;
        request(&mut conn, route, query).await?;
        let answered = Instant::now();
        let mut counter = route.counter();
        counter.stop_after(1);
        let end = conn.read_body(&mut counter, None).await?;
        let at = Instant::now();
        ensure!(
            end == BodyEnd::Stopped,
            "the stream ended before its first chunk"
        );
        if route == Route::Ws {
            let _ = conn.send(&WS_CLOSE).await;
        }
        Ok((at - started, at - answered))
    };
    timeout(Duration::from_secs(10), run)
        .await
        .context("no first chunk within 10 s")?
}

/// Time from sending the request to the first chunk decoded whole (every route, `/stream`
/// too, counts its first complete line), asking for the stream compressed or not.
pub async fn first_decoded_chunk(
    addr: SocketAddr,
    route: Route,
    query: &str,
    ask: Ask,
) -> anyhow::Result<Duration> {
    let run = async {
        let mut conn = Conn::connect(addr).await?;
        let started = Instant::now();
        request_asking(&mut conn, route, query, ask).await?;
        let mut counter = Counter::decoding(route, &conn)?;
        counter.stop_after(1);
        let end = conn.read_body(&mut counter, None).await?;
        ensure!(
            end == BodyEnd::Stopped,
            "the stream ended before its first chunk{}",
            decode_error(&counter)
        );
        Ok(started.elapsed())
    };
    timeout(Duration::from_secs(10), run)
        .await
        .context("no first chunk within 10 s")?
}

/// One whole stream, read and decoded: what it cost on the wire.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WholeStream {
    /// How the server encoded it.
    pub negotiated: &'static str,
    /// Chunks decoded.
    pub chunks: u64,
    /// Bytes after the response head as they came: the body with HTTP/1.1's chunk framing,
    /// or every WebSocket frame byte (headers included).
    pub wire_bytes: u64,
    /// The body as sent, without chunk framing; for a WebSocket, its messages' payloads.
    pub sent_bytes: u64,
    /// The same bytes decoded (what an uncompressed stream sends).
    pub decoded_bytes: u64,
    /// When each chunk decoded, when recorded.
    #[serde(skip)]
    pub arrivals: Vec<Instant>,
    /// How long it took, from the request to the end.
    pub secs: f64,
}

/// Reads all of the stream `route?query`, asking for it compressed or not, decoding it as
/// it comes; with `record`, notes when each chunk decoded. Fails unless `expected` chunks
/// decoded.
pub async fn whole_stream(
    addr: SocketAddr,
    route: Route,
    query: &str,
    ask: Ask,
    expected: u64,
    record: bool,
) -> anyhow::Result<WholeStream> {
    let run = async {
        let started = Instant::now();
        let mut conn = open_asking(addr, route, query, ask, false, 256 * 1024).await?;
        let mut counter = Counter::decoding(route, &conn)?;
        if record {
            counter.record();
        }
        let end = conn.read_body(&mut counter, None).await?;
        let secs = started.elapsed().as_secs_f64();
        if route == Route::Ws {
            let _ = conn.send(&WS_CLOSE).await;
        }
        ensure!(
            counter.chunks() == expected,
            "{}?{query} ({}): {} of {expected} chunks decoded ({end:?}){}",
            route.path(),
            ask.name(route),
            counter.chunks(),
            decode_error(&counter)
        );
        Ok(WholeStream {
            negotiated: negotiated(conn.head),
            chunks: counter.chunks(),
            wire_bytes: conn.wire_bytes,
            sent_bytes: counter.sent_bytes(),
            decoded_bytes: counter.decoded_bytes(),
            secs,
            arrivals: counter.into_arrivals(),
        })
    };
    timeout(Duration::from_secs(300), run)
        .await
        .context("a stream took over 300 s")?
}

/// `conns` whole streams of `count` chunks of `route` read at once, flat out, asking for them
/// compressed or not: chunks per second, and the server's CPU over the whole of it (idle
/// before and after) per chunk.
///
/// Whole streams, not a window of endless ones: a compressed stream packs ten times more
/// chunks into a socket buffer, and megabytes of loopback buffers filled before a window
/// and drained in it count chunks whose CPU was spent outside it.
pub async fn whole_streams(
    addr: SocketAddr,
    route: Route,
    ask: Ask,
    count: u64,
    conns: usize,
    cpu: impl Fn() -> Option<Duration>,
) -> anyhow::Result<Window> {
    let query = format!("count={count}");
    let cpu_start = cpu();
    let started = Instant::now();
    let reads = futures_util::future::join_all(
        (0..conns).map(|_| whole_stream(addr, route, &query, ask, count, false)),
    )
    .await;
    let secs = started.elapsed().as_secs_f64();
    let cpu_end = cpu();
    let mut negotiated = "none";
    for read in reads {
        negotiated = read?.negotiated;
    }
    let total = count * conns as u64;
    Ok(Window::measured(
        total,
        secs,
        (cpu_start, cpu_end),
        negotiated,
    ))
}

/// Reads a paced stream of `count` chunks `interval` apart; returns how much longer than
/// `(count - 1) × interval` the time from its first chunk to its end was.
pub async fn drift(
    addr: SocketAddr,
    route: Route,
    count: u64,
    interval: Duration,
) -> anyhow::Result<Duration> {
    let query = format!("count={count}&interval_ms={}", interval.as_millis());
    let mut conn = open_stream(addr, route, &query).await?;
    let mut counter = route.counter();
    match route {
        Route::Text => {
            conn.read_body(&mut FirstByte, None).await?;
        }
        _ => {
            counter.stop_after(1);
            conn.read_body(&mut counter, None).await?;
            counter.stop_after(0);
        }
    }
    let first = Instant::now();
    let limit = interval * u32::try_from(count).unwrap_or(u32::MAX) + Duration::from_secs(30);
    timeout(limit, conn.read_body(&mut counter, None))
        .await
        .context("a paced stream never ended")??;
    let took = first.elapsed();
    if route == Route::Ws {
        let _ = conn.send(&WS_CLOSE).await;
    }
    let expected = interval * u32::try_from(count - 1).unwrap_or(u32::MAX);
    Ok(took.saturating_sub(expected))
}

/// What holding many paced streams showed.
#[derive(Debug, Default, serde::Serialize)]
pub struct Held {
    /// Streams asked for.
    pub wanted: usize,
    /// Streams open and alive until the end.
    pub held: usize,
    /// Streams that failed to open or broke.
    pub failed: usize,
    /// Server RSS before, KiB.
    pub rss_before_kib: u64,
    /// Server RSS with all streams open, at the end of the hold, KiB.
    pub rss_held_kib: u64,
    /// `(open streams, server RSS KiB)` while opening.
    pub curve: Vec<(usize, u64)>,
    /// Lag of events after the first, ms: arrival − (first arrival + k × interval), for
    /// events that arrived once every stream was open (the steady state).
    pub lag_ms: Vec<f64>,
    /// The same for events that arrived while streams were still being opened.
    pub ramp_lag_ms: Vec<f64>,
    /// Lateness of each steady-state event against the one before it, ms:
    /// arrival − (previous arrival + interval), at least 0. A server that sleeps `interval`
    /// after each chunk never makes up a delay, which then counts in every later `lag_ms`
    /// of its stream; this counts it once.
    pub gap_lag_ms: Vec<f64>,
    /// How long opening all streams took.
    pub ramp_secs: f64,
    /// The kernel's `ListenOverflows` count during the ramp (connections the server was
    /// too slow to accept; system-wide, but this loopback run is the bulk of it).
    pub listen_overflows: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// How the server encoded the streams (the first one opened).
    pub negotiated: Option<&'static str>,
}

/// Opens `n` streams of `route` paced `interval` apart (at most 200 connecting at once), in
/// ten steps sampling the server's RSS after each, holds them all for `hold`, then closes
/// them.
pub async fn held(
    addr: SocketAddr,
    route: Route,
    n: usize,
    interval: Duration,
    hold: Duration,
    rss: impl Fn() -> Option<u64>,
) -> anyhow::Result<Held> {
    held_asking(addr, route, Ask::Identity, n, interval, hold, rss).await
}

/// [`held`], asking for the streams compressed or not; each is decoded as it comes.
pub async fn held_asking(
    addr: SocketAddr,
    route: Route,
    ask: Ask,
    n: usize,
    interval: Duration,
    hold: Duration,
    rss: impl Fn() -> Option<u64>,
) -> anyhow::Result<Held> {
    let negotiated = Arc::new(std::sync::OnceLock::new());
    let mut held = Held {
        wanted: n,
        rss_before_kib: rss().unwrap_or(0),
        ..Held::default()
    };
    held.curve.push((0, held.rss_before_kib));
    let (stop_tx, stop_rx) = watch::channel(false);
    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(200));
    let query = format!("count=100000000&interval_ms={}", interval.as_millis());
    let mut tasks = JoinSet::new();
    let ramp_start = Instant::now();
    let overflows_before = listen_overflows();
    const STEPS: usize = 10;
    let mut spawned = 0;
    for step in 1..=STEPS {
        let target = n * step / STEPS;
        while spawned < target {
            spawned += 1;
            let (gate, opened, failed) = (gate.clone(), opened.clone(), failed.clone());
            let negotiated = negotiated.clone();
            let mut stop = stop_rx.clone();
            let query = query.clone();
            tasks.spawn(async move {
                let result = async {
                    let permit = gate.acquire_owned().await?;
                    let mut conn = timeout(
                        Duration::from_secs(30),
                        open_asking(addr, route, &query, ask, true, 4096),
                    )
                    .await
                    .context("no answer within 30 s")??;
                    let _ = negotiated.set(self::negotiated(conn.head));
                    let mut events = Counter::decoding(route, &conn)?;
                    events.record();
                    events.stop_after(1);
                    timeout(Duration::from_secs(30), conn.read_body(&mut events, None))
                        .await
                        .context("no first chunk within 30 s")??;
                    drop(permit);
                    opened.fetch_add(1, Ordering::Relaxed);
                    events.stop_after(0);
                    tokio::select! {
                        r = conn.read_body(&mut events, None) => {
                            r?;
                            bail!("the stream ended early");
                        }
                        _ = stop.changed() => {}
                    }
                    anyhow::Ok(events.into_arrivals())
                }
                .await;
                if result.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                result
            });
        }
        let waited = Instant::now();
        while opened.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < target
            && waited.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        held.curve
            .push((opened.load(Ordering::Relaxed), rss().unwrap_or(0)));
    }
    let all_open = Instant::now();
    held.negotiated = negotiated.get().copied();
    held.ramp_secs = ramp_start.elapsed().as_secs_f64();
    held.listen_overflows = listen_overflows().saturating_sub(overflows_before);
    tokio::time::sleep(hold).await;
    held.rss_held_kib = rss().unwrap_or(0);
    // Events that arrive after this, while every connection closes on both sides, are not
    // the held state's: they are left out (BENCHMARKS.md, "19 000 held SSE streams").
    let hold_end = Instant::now();
    let _ = stop_tx.send(true);
    while let Some(result) = tasks.join_next().await {
        match result? {
            Ok(arrivals) => {
                held.held += 1;
                if let Some(&first) = arrivals.first() {
                    for (k, &at) in arrivals.iter().enumerate().skip(1) {
                        let due = first + interval * u32::try_from(k).unwrap_or(u32::MAX);
                        let lag = at.saturating_duration_since(due).as_secs_f64() * 1e3;
                        if at >= hold_end {
                            continue;
                        }
                        if at >= all_open {
                            held.lag_ms.push(lag);
                            let gap_due = arrivals[k - 1] + interval;
                            held.gap_lag_ms
                                .push(at.saturating_duration_since(gap_due).as_secs_f64() * 1e3);
                        } else {
                            held.ramp_lag_ms.push(lag);
                        }
                    }
                }
            }
            Err(e) => {
                held.failed += 1;
                held.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    Ok(held)
}

/// chunkstream's `chunkstream_bytes_sent_total{transport, encoding}` from its `/metrics`:
/// `(transport, encoding)` → bytes. Empty when the server has no such series (older builds).
pub async fn bytes_sent_metric(
    addr: SocketAddr,
) -> anyhow::Result<std::collections::BTreeMap<(String, String), u64>> {
    let mut conn = Conn::connect(addr).await?;
    conn.get("/metrics", "").await?;
    let head = conn.read_head().await?;
    ensure!(head.status == 200, "/metrics answered {}", head.status);
    let mut body = Collect::default();
    timeout(Duration::from_secs(10), conn.read_body(&mut body, None))
        .await
        .context("/metrics took over 10 s")??;
    Ok(parse_bytes_sent(&String::from_utf8_lossy(&body.0)))
}

/// The `chunkstream_bytes_sent_total` series of a Prometheus text exposition.
fn parse_bytes_sent(text: &str) -> std::collections::BTreeMap<(String, String), u64> {
    let label = |labels: &str, name: &str| {
        labels.split(',').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"').to_owned())
        })
    };
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("chunkstream_bytes_sent_total{")?;
            let (labels, value) = rest.split_once('}')?;
            let value = value.trim().parse::<f64>().ok()? as u64;
            Some((
                (label(labels, "transport")?, label(labels, "encoding")?),
                value,
            ))
        })
        .collect()
}

/// `TcpExt: ListenOverflows` from `/proc/net/netstat` (0 when unreadable).
fn listen_overflows() -> u64 {
    let Ok(netstat) = std::fs::read_to_string("/proc/net/netstat") else {
        return 0;
    };
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenOverflows")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_sent_series_are_read_from_the_exposition() {
        let text = "# TYPE chunkstream_bytes_sent_total counter\n\
            chunkstream_bytes_sent_total{transport=\"sse\",encoding=\"gzip\"} 1234\n\
            chunkstream_bytes_sent_total{encoding=\"identity\",transport=\"text\"} 5e3\n\
            chunkstream_chunks_sent_total{transport=\"sse\"} 7\n";
        let series = parse_bytes_sent(text);
        assert_eq!(series.len(), 2);
        assert_eq!(series[&("sse".to_owned(), "gzip".to_owned())], 1234);
        assert_eq!(series[&("text".to_owned(), "identity".to_owned())], 5000);
    }
}
