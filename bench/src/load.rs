//! The loads: one stream read flat out, many streams read flat out for a while, a wrk-style
//! keep-alive request loop, thousands of held paced streams, first-chunk latency.
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
    BodyEnd, Conn, FirstByte, LineCounter, Sink, SseCounter, WS_CLOSE, WsCounter,
    ws_upgrade_request,
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

    /// A counter for what this route sends.
    pub fn counter(self) -> Counter {
        match self {
            Route::Text | Route::Jsonl => Counter::Lines(LineCounter::default()),
            Route::Sse => Counter::Sse(SseCounter::default()),
            Route::Ws => Counter::Ws(WsCounter::default()),
        }
    }
}

/// Counts the chunks of any route.
#[derive(Debug)]
pub enum Counter {
    /// Text lines.
    Lines(LineCounter),
    /// SSE chunk events.
    Sse(SseCounter),
    /// WebSocket text frames.
    Ws(WsCounter),
}

impl Counter {
    /// Chunks counted.
    pub fn chunks(&self) -> u64 {
        match self {
            Counter::Lines(c) => c.lines,
            Counter::Sse(c) => c.events,
            Counter::Ws(c) => c.texts,
        }
    }

    /// Stop (return `Break`) once this many chunks were counted; 0: never.
    fn stop_after(&mut self, n: u64) {
        match self {
            Counter::Lines(c) => c.stop_after = n,
            Counter::Sse(c) => c.stop_after = n,
            Counter::Ws(c) => c.stop_after = n,
        }
    }

    /// A counter for `route` that records each chunk's arrival (text and SSE only).
    fn recording(route: Route) -> anyhow::Result<Self> {
        match route {
            Route::Text | Route::Jsonl => Ok(Counter::Lines(LineCounter::recording())),
            Route::Sse => Ok(Counter::Sse(SseCounter::recording())),
            Route::Ws => bail!("arrival times are recorded for HTTP streams only"),
        }
    }

    /// The arrival times recorded.
    fn into_arrivals(self) -> Vec<Instant> {
        match self {
            Counter::Lines(c) => c.arrivals,
            Counter::Sse(c) => c.arrivals,
            Counter::Ws(_) => None,
        }
        .unwrap_or_default()
    }
}

impl Sink for Counter {
    fn data(&mut self, bytes: &[u8]) -> ControlFlow<usize> {
        match self {
            Counter::Lines(c) => c.data(bytes),
            Counter::Sse(c) => c.data(bytes),
            Counter::Ws(c) => c.data(bytes),
        }
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
    let mut conn = Conn::connect_with(addr, reset_on_close, buf_size)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    request(&mut conn, route, query).await?;
    Ok(conn)
}

/// Sends the request for `route` on an open connection and checks the answer's status.
async fn request(conn: &mut Conn, route: Route, query: &str) -> anyhow::Result<()> {
    let target = format!("{}?{query}", route.path());
    match route {
        Route::Ws => conn.send(ws_upgrade_request(&target).as_bytes()).await?,
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
    const WARM_UP: Duration = Duration::from_millis(500);
    let mut open = Vec::with_capacity(conns);
    for _ in 0..conns {
        open.push(open_stream(addr, route, &format!("count={count}")).await?);
    }
    let warm_end = Instant::now() + WARM_UP;
    let deadline = warm_end + duration;
    let mut tasks = JoinSet::new();
    for mut conn in open {
        tasks.spawn(async move {
            let mut counter = route.counter();
            let end = conn.read_body(&mut counter, Some(warm_end)).await?;
            ensure!(
                end == BodyEnd::Deadline,
                "a {count}-chunk stream ended early"
            );
            let before = counter.chunks();
            let end = conn.read_body(&mut counter, Some(deadline)).await?;
            ensure!(
                end == BodyEnd::Deadline,
                "a {count}-chunk stream ended early"
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
    let cpu_ns_per_chunk = match (cpu_start, cpu_end) {
        (Some(a), Some(b)) if total > 0 => Some((b - a).as_secs_f64() * 1e9 / total as f64),
        _ => None,
    };
    Ok(Window {
        rate: total as f64 / duration.as_secs_f64(),
        cpu_ns_per_chunk,
    })
}

async fn open_stream(addr: SocketAddr, route: Route, query: &str) -> anyhow::Result<Conn> {
    open(addr, route, query, false, 256 * 1024).await
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
}

/// Opens `n` streams of `route` (text or SSE) paced `interval` apart (at most 200
/// connecting at once), in ten steps sampling the server's RSS after each, holds them all
/// for `hold`, then closes them.
pub async fn held(
    addr: SocketAddr,
    route: Route,
    n: usize,
    interval: Duration,
    hold: Duration,
    rss: impl Fn() -> Option<u64>,
) -> anyhow::Result<Held> {
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
            let mut stop = stop_rx.clone();
            let query = query.clone();
            tasks.spawn(async move {
                let result = async {
                    let permit = gate.acquire_owned().await?;
                    let mut conn = timeout(
                        Duration::from_secs(30),
                        open(addr, route, &query, true, 4096),
                    )
                    .await
                    .context("no answer within 30 s")??;
                    let mut events = Counter::recording(route)?;
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
