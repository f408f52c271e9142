//! The `compression` scenario (issue 25): what compressing a stream buys and costs, per
//! transport, against the same stream uncompressed, against idiomatic axum with tower-http's
//! `CompressionLayer`, and, for a held WebSocket, against python `websockets`' defaults.
//!
//! - **Bytes per chunk**, paced (each chunk flushed alone: the compressor's context is what
//!   makes it small) and flat out (whole frames compressed), counted as the client receives
//!   them: the body as sent, and on the wire with HTTP/1.1's chunk framing (for a WebSocket:
//!   the payload, and every frame byte). Each compressed stream is decoded as it arrives and
//!   must decode to as many bytes as the identity one.
//! - **Server CPU per chunk flat out**, the streams decoded by the client as they come.
//! - **Time to the first decoded chunk** and the **lag of each paced chunk**.
//! - **Memory per held stream**: N streams at one chunk per 5 s, compressed or not, each on a
//!   fresh server.

use std::{collections::BTreeMap, time::Duration};

use serde_json::json;

use crate::{
    load::{self, Ask, Route, WholeStream},
    plot,
    procs::{Kind, Server},
    report::{Status, median, percentile, si},
    scenarios::Bench,
};

/// The transports, in table order.
const ROUTES: [Route; 4] = [Route::Text, Route::Sse, Route::Jsonl, Route::Ws];

/// The first index of the measured streams: 4-digit indexes, as the research measured
/// (`/work/research/compression/REPORT.md` §1.1), so that bytes per chunk compare.
const PACED_START: u64 = 1_000;

/// Connections per flat-out load: as sse-flat and ws-flat.
fn flat_conns(route: Route) -> usize {
    if route == Route::Ws { 100 } else { 10 }
}

/// One stream's bytes per chunk, as measured.
#[derive(Debug, Clone, serde::Serialize)]
struct PerChunk {
    /// How the server encoded the stream.
    negotiated: &'static str,
    /// The body as sent (a WebSocket's payloads), per chunk.
    sent: f64,
    /// On the wire (with chunk framing; a WebSocket's whole frames), per chunk.
    wire: f64,
    /// Decoded, per chunk.
    decoded: f64,
    /// Decoded bytes in all.
    decoded_total: u64,
    /// Lag of each chunk after the first: arrival − (first arrival + k × interval), ms
    /// (paced streams only).
    #[serde(skip)]
    lag_ms: Vec<f64>,
    /// Its median, 99th percentile and largest, ms (for the results file).
    lag_ms_p50_p99_max: [f64; 3],
}

impl PerChunk {
    fn new(read: &WholeStream, interval: Option<Duration>) -> Self {
        let chunks = read.chunks.max(1) as f64;
        let lag_ms = match (interval, read.arrivals.first()) {
            (Some(interval), Some(&first)) => read
                .arrivals
                .iter()
                .enumerate()
                .skip(1)
                .map(|(k, &at)| {
                    let due = first + interval * u32::try_from(k).unwrap_or(u32::MAX);
                    at.saturating_duration_since(due).as_secs_f64() * 1e3
                })
                .collect(),
            _ => Vec::new(),
        };
        Self {
            negotiated: read.negotiated,
            sent: read.sent_bytes as f64 / chunks,
            wire: read.wire_bytes as f64 / chunks,
            decoded: read.decoded_bytes as f64 / chunks,
            decoded_total: read.decoded_bytes,
            lag_ms_p50_p99_max: [
                median(&lag_ms),
                percentile(&lag_ms, 99.0),
                percentile(&lag_ms, 100.0),
            ],
            lag_ms,
        }
    }
}

/// How a stream asked for with `ask` came, for the table: what the server chose, and that it
/// declined when it sent identity to a client that asked for compression.
fn came(route: Route, ask: Ask, negotiated: &str) -> String {
    if ask == Ask::Compressed && negotiated == "identity" {
        format!("{} asked, declined: identity", ask.name(route))
    } else {
        negotiated.to_owned()
    }
}

/// `(server, route, ask)` → a measurement.
type Table<T> = BTreeMap<(&'static str, &'static str, &'static str), T>;

fn key(server: &Server, route: Route, ask: Ask) -> (&'static str, &'static str, &'static str) {
    (server.kind.name(), route.name(), ask.name(route))
}

/// The servers of the throughput parts.
struct Peers {
    chunkstream: Server,
    axum_gzip: Server,
    /// python `websockets` with its default permessage-deflate, when set up: its bytes only.
    python_ws: Option<Server>,
}

impl Peers {
    /// What each part measures: chunkstream on every transport, identity and compressed;
    /// axum + CompressionLayer on the HTTP transports, asked for gzip (its SSE stays
    /// identity: tower-http skips `text/event-stream`).
    fn loads(&self) -> Vec<(&Server, Route, Ask)> {
        let mut loads = Vec::new();
        for route in ROUTES {
            for ask in Ask::BOTH {
                loads.push((&self.chunkstream, route, ask));
            }
        }
        for route in [Route::Text, Route::Sse, Route::Jsonl] {
            loads.push((&self.axum_gzip, route, Ask::Compressed));
        }
        loads
    }

    /// What the bytes are counted of: [`Peers::loads`] and python `websockets`' compressed
    /// WebSocket.
    fn byte_loads(&self) -> Vec<(&Server, Route, Ask)> {
        let mut loads = self.loads();
        if let Some(python) = &self.python_ws {
            loads.push((python, Route::Ws, Ask::Compressed));
        }
        loads
    }
}

impl Bench {
    /// The compression scenario: bytes, CPU, latency and memory per transport × encoding.
    pub async fn compression(&mut self) -> anyhow::Result<()> {
        let peers = Peers {
            chunkstream: self.launcher.start(Kind::Chunkstream).await?,
            axum_gzip: self.launcher.start(Kind::AxumGzip).await?,
            python_ws: match self.launcher.python_ws {
                Some(_) => Some(self.launcher.start(Kind::PyWs).await?),
                None => None,
            },
        };
        let mut raw = serde_json::Map::new();
        let (paced, flat) = self.compression_bytes(&peers).await?;
        raw.insert("paced".into(), table_json(&paced));
        raw.insert("flat".into(), table_json(&flat));
        let cpu = self.compression_cpu(&peers).await?;
        raw.insert("flat_cpu_ns_per_chunk".into(), table_json(&cpu));
        let first = self.compression_first_chunk(&peers, &paced).await?;
        raw.insert("first_chunk_ms".into(), table_json(&first));
        drop(peers);
        let held = self.compression_held().await?;
        raw.insert("held".into(), held);
        self.report.raw("compression", raw);
        self.compression_plot(&paced, &flat)
    }

    /// Bytes per chunk, paced and flat out, for every load; the rows.
    async fn compression_bytes(
        &mut self,
        peers: &Peers,
    ) -> anyhow::Result<(Table<PerChunk>, Table<PerChunk>)> {
        let plan = self.plan.compression.clone();
        let (interval, paced_chunks) = (plan.paced_interval, plan.paced_chunks);
        let end = PACED_START + plan.paced_chunks;
        let paced_query = format!(
            "start={PACED_START}&count={end}&interval_ms={}",
            interval.as_millis()
        );
        // The server's own count of what it sent, to hold against the client's.
        let metric_before = load::bytes_sent_metric(peers.chunkstream.addr)
            .await
            .unwrap_or_default();
        let mut client_sent: BTreeMap<(String, String), u64> = BTreeMap::new();
        // Paced: every stream at once (they are light), each chunk flushed alone.
        let reads = futures_util::future::join_all(peers.byte_loads().into_iter().map(
            |(server, route, ask)| {
                let query = paced_query.clone();
                async move {
                    let read =
                        load::whole_stream(server.addr, route, &query, ask, paced_chunks, true)
                            .await;
                    (key(server, route, ask), read)
                }
            },
        ))
        .await;
        let mut paced = Table::new();
        for (k, read) in reads {
            let read = read?;
            println!(
                "  paced {} {} {}: {} ({}), {:.1} B/chunk sent, {:.1} on the wire",
                k.0,
                k.1,
                k.2,
                read.negotiated,
                read.chunks,
                read.sent_bytes as f64 / read.chunks as f64,
                read.wire_bytes as f64 / read.chunks as f64
            );
            if k.0 == Kind::Chunkstream.name() {
                *client_sent
                    .entry(metric_key(k.1, read.negotiated))
                    .or_default() += read.sent_bytes;
            }
            paced.insert(k, PerChunk::new(&read, Some(interval)));
        }
        // Flat out: one after the other, each read whole.
        let flat_query = format!("count={}", plan.flat_chunks);
        let mut flat = Table::new();
        for (server, route, ask) in peers.byte_loads() {
            let read = load::whole_stream(
                server.addr,
                route,
                &flat_query,
                ask,
                plan.flat_chunks,
                false,
            )
            .await?;
            let k = key(server, route, ask);
            println!(
                "  flat {} {} {}: {} in {:.2} s, {:.2} B/chunk sent, {:.2} on the wire",
                k.0,
                k.1,
                k.2,
                read.negotiated,
                read.secs,
                read.sent_bytes as f64 / read.chunks as f64,
                read.wire_bytes as f64 / read.chunks as f64
            );
            if k.0 == Kind::Chunkstream.name() {
                *client_sent
                    .entry(metric_key(k.1, read.negotiated))
                    .or_default() += read.sent_bytes;
            }
            flat.insert(k, PerChunk::new(&read, None));
        }
        let metric_after = load::bytes_sent_metric(peers.chunkstream.addr)
            .await
            .unwrap_or_default();
        self.metric_row(&client_sent, &metric_before, &metric_after);
        let cs = peers.chunkstream.kind.name();
        let axum = peers.axum_gzip.kind.name();
        let python = Kind::PyWs.name();
        for (what, table, target) in [
            (
                format!(
                    "paced: {} chunks {} ms apart, each flushed alone",
                    plan.paced_chunks,
                    interval.as_millis()
                ),
                &paced,
                2.5,
            ),
            (format!("flat out: {} chunks", plan.flat_chunks), &flat, 7.0),
        ] {
            for route in ROUTES {
                let identity = &table[&(cs, route.name(), Ask::Identity.name(route))];
                let compressed = &table[&(cs, route.name(), Ask::Compressed.name(route))];
                let axum_row = table
                    .get(&(axum, route.name(), Ask::Compressed.name(route)))
                    .map(|a| {
                        let note = if route == Route::Sse && a.negotiated == "identity" {
                            " (tower-http skips text/event-stream)"
                        } else {
                            ""
                        };
                        format!(
                            "; axum + CompressionLayer {} {:.1} B ({:.1} on the wire){note}",
                            came(route, Ask::Compressed, a.negotiated),
                            a.sent,
                            a.wire
                        )
                    })
                    .unwrap_or_default();
                let python_row = table
                    .get(&(python, route.name(), Ask::Compressed.name(route)))
                    .map(|p| {
                        let same = if p.decoded_total == identity.decoded_total {
                            "decodes to chunkstream's identity bytes"
                        } else {
                            "**decodes to other bytes than chunkstream's identity**"
                        };
                        format!(
                            "; python websockets {} {:.1} B ({:.1} frames; {same})",
                            came(route, Ask::Compressed, p.negotiated),
                            p.sent,
                            p.wire
                        )
                    })
                    .unwrap_or_default();
                let body_x = identity.sent / compressed.sent.max(1e-9);
                let wire_x = identity.wire / compressed.wire.max(1e-9);
                let decodes = compressed.decoded_total == identity.decoded_total;
                let framing = if route == Route::Ws {
                    "frames"
                } else {
                    "with chunk framing"
                };
                // The targets are for SSE; the other rows are for the record.
                let (target_text, status) = if route == Route::Sse {
                    (
                        format!("≥ {target}× fewer bytes on the wire"),
                        Status::check(wire_x >= target && decodes),
                    )
                } else if decodes {
                    ("(SSE's is the target)".to_owned(), Status::Info)
                } else {
                    ("decodes to the identity body".to_owned(), Status::Missed)
                };
                self.report.row(
                    format!("compression, {what}: {} bytes per chunk", route.name()),
                    format!(
                        "identity {:.1} B ({:.1} {framing}); {} {:.1} B ({:.1} {framing})\
                         {axum_row}{python_row}",
                        identity.sent,
                        identity.wire,
                        came(route, Ask::Compressed, compressed.negotiated),
                        compressed.sent,
                        compressed.wire,
                    ),
                    format!(
                        "{body_x:.2}× fewer sent, {wire_x:.2}× on the wire; {}",
                        if decodes {
                            format!("decodes to the identity's {} B", identity.decoded_total)
                        } else {
                            format!(
                                "**decodes to {} B, identity {} B**",
                                compressed.decoded_total, identity.decoded_total
                            )
                        }
                    ),
                    target_text,
                    status,
                );
            }
        }
        Ok((paced, flat))
    }

    /// A row holding `chunkstream_bytes_sent_total` (its growth while the bytes were
    /// counted) against what the client received of each transport and encoding.
    fn metric_row(
        &mut self,
        client: &BTreeMap<(String, String), u64>,
        before: &BTreeMap<(String, String), u64>,
        after: &BTreeMap<(String, String), u64>,
    ) {
        if after.is_empty() {
            self.report.row(
                "compression: `chunkstream_bytes_sent_total` against the client's count",
                "the server has no such metric",
                "",
                "",
                Status::Info,
            );
            return;
        }
        let mut parts = Vec::new();
        let mut http_equal = true;
        for (series, &received) in client {
            let counted =
                after.get(series).copied().unwrap_or(0) - before.get(series).copied().unwrap_or(0);
            if series.0 != "ws" {
                http_equal &= counted == received;
            }
            let note = if counted == 0 && received > 0 {
                " (not counted by this server)"
            } else {
                ""
            };
            parts.push(format!(
                "{} {}: server {counted} B, client {received} B{note}",
                series.0, series.1
            ));
        }
        self.report.row(
            "compression: `chunkstream_bytes_sent_total` against the client's count (the paced \
             and flat streams above)",
            parts.join("; "),
            "HTTP: the body without chunk framing; WS: the messages' payload",
            "HTTP series equal",
            Status::check(http_equal),
        );
    }

    /// Server CPU per chunk of whole streams read flat out, run by run, every load
    /// interleaved. The first run reads `flat_chunks` per connection; later runs as many as
    /// take about `run_time`, as the first run's pace says (CPU time is read in 10 ms ticks).
    async fn compression_cpu(&mut self, peers: &Peers) -> anyhow::Result<Table<Vec<f64>>> {
        let mut cpu: Table<Vec<f64>> = Table::new();
        let mut rates: Table<Vec<f64>> = Table::new();
        let mut negotiated: Table<&'static str> = Table::new();
        let first_count = self.plan.compression.flat_chunks;
        let mut counts: Table<u64> = Table::new();
        for run in 0..self.plan.runs {
            for (server, route, ask) in peers.loads() {
                let k = key(server, route, ask);
                let conns = flat_conns(route);
                let count = counts.get(&k).copied().unwrap_or(first_count);
                let window =
                    load::whole_streams(server.addr, route, ask, count, conns, || server.cpu())
                        .await?;
                let secs = (count * conns as u64) as f64 / window.rate;
                let paced_count = (count as f64 * self.plan.run_time.as_secs_f64() / secs) as u64;
                // At least a tenth of the first run's: the slowest loads shrink a little.
                counts.insert(k, paced_count.clamp(first_count / 10, 100_000_000));
                negotiated.insert(k, window.negotiated);
                rates.entry(k).or_default().push(window.rate);
                cpu.entry(k).or_default().extend(window.cpu_ns_per_chunk);
                println!(
                    "  run {run}: {} {} {} ({}): {conns} × {} chunks in {secs:.2} s, {} chunks/s, \
                     {:.0} ns CPU each",
                    k.0,
                    k.1,
                    k.2,
                    window.negotiated,
                    si(count as f64),
                    si(window.rate),
                    window.cpu_ns_per_chunk.unwrap_or(f64::NAN)
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        let cs = peers.chunkstream.kind.name();
        let axum = peers.axum_gzip.kind.name();
        for route in ROUTES {
            let id_key = (cs, route.name(), Ask::Identity.name(route));
            let cz_key = (cs, route.name(), Ask::Compressed.name(route));
            let ax_key = (axum, route.name(), Ask::Compressed.name(route));
            let (id, cz) = (&cpu[&id_key], &cpu[&cz_key]);
            let mut measured = format!(
                "chunkstream identity {:.0} ns ({}/s); {} {:.0} ns ({}/s)",
                median(id),
                si(median(&rates[&id_key])),
                came(route, Ask::Compressed, negotiated[&cz_key]),
                median(cz),
                si(median(&rates[&cz_key])),
            );
            let mut compared = format!("{:.2}× identity's", median(cz) / median(id).max(1e-9));
            let mut target = "(for the record)".to_owned();
            let mut status = Status::Info;
            if let Some(ax) = cpu.get(&ax_key) {
                let ax_negotiated = negotiated[&ax_key];
                let note = if route == Route::Sse && ax_negotiated == "identity" {
                    ", uncompressed: tower-http skips text/event-stream"
                } else {
                    ""
                };
                let ax_came = came(route, Ask::Compressed, ax_negotiated);
                measured.push_str(&format!(
                    "; axum + CompressionLayer {ax_came} {:.0} ns ({}/s{note})",
                    median(ax),
                    si(median(&rates[&ax_key])),
                ));
                let vs_axum = median(cz) / median(ax).max(1e-9);
                compared.push_str(&format!(", {vs_axum:.2}× axum's"));
                if route == Route::Sse {
                    target = "gzip below axum's uncompressed SSE".to_owned();
                    status = Status::check(vs_axum < 1.0 && negotiated[&cz_key] == "gzip");
                }
            }
            self.report.row(
                format!(
                    "compression, flat out, {} whole streams at once: {} server CPU per chunk",
                    flat_conns(route),
                    route.name()
                ),
                measured,
                compared,
                target,
                status,
            );
        }
        Ok(cpu)
    }

    /// Time to the first decoded chunk of a stream paced 1 s apart, every load interleaved;
    /// the rows, with the lag of the paced streams' chunks.
    async fn compression_first_chunk(
        &mut self,
        peers: &Peers,
        paced: &Table<PerChunk>,
    ) -> anyhow::Result<Table<Vec<f64>>> {
        let mut samples: Table<Vec<f64>> = Table::new();
        for _ in 0..self.plan.first_chunk_samples {
            for (server, route, ask) in peers.loads() {
                let took =
                    load::first_decoded_chunk(server.addr, route, "count=2&interval_ms=1000", ask)
                        .await?;
                samples
                    .entry(key(server, route, ask))
                    .or_default()
                    .push(took.as_secs_f64() * 1e3);
            }
        }
        let cs = peers.chunkstream.kind.name();
        let interval_ms = self.plan.compression.paced_interval.as_secs_f64() * 1e3;
        for route in ROUTES {
            let mut parts = Vec::new();
            let mut lag_p99 = [0.0; 2];
            let mut first_p99 = 0.0;
            for (i, ask) in Ask::BOTH.into_iter().enumerate() {
                let k = (cs, route.name(), ask.name(route));
                let (first, lag) = (&samples[&k], &paced[&k].lag_ms);
                lag_p99[i] = percentile(lag, 99.0);
                first_p99 = percentile(first, 99.0);
                parts.push(format!(
                    "{} first chunk {:.2} ms (p99 {first_p99:.2}), lag p50 {:.2} ms, p99 {:.2} ms",
                    came(route, ask, paced[&k].negotiated),
                    median(first),
                    median(lag),
                    lag_p99[i],
                ));
            }
            // The lag is counted from the first chunk, which goes out at once while every later
            // one waits for a timer tick (1 ms): read it against identity's.
            let ok = first_p99 < 2.0 && lag_p99[1] <= lag_p99[0] + 0.5;
            let declined =
                paced[&(cs, route.name(), Ask::Compressed.name(route))].negotiated == "identity";
            self.report.row(
                format!(
                    "compression, latency: {} first decoded chunk (interval 1 s); lag of {} chunks \
                     {interval_ms} ms apart, each from the first's arrival",
                    route.name(),
                    self.plan.compression.paced_chunks,
                ),
                parts.join("; "),
                format!(
                    "n = {} first chunks each; lag p99 compressed − identity {:+.2} ms",
                    self.plan.first_chunk_samples,
                    lag_p99[1] - lag_p99[0]
                ),
                if declined {
                    "(compression declined: nothing to hold against identity)"
                } else {
                    "compressed: p99 first chunk < 2 ms, lag p99 ≤ identity's + 0.5 ms"
                },
                if declined {
                    Status::Info
                } else {
                    Status::check(ok)
                },
            );
        }
        Ok(samples)
    }

    /// Memory per held stream, compressed or not: SSE and WebSocket on chunkstream, and
    /// python `websockets` when it is set up; each on a fresh server.
    async fn compression_held(&mut self) -> anyhow::Result<serde_json::Value> {
        let n = self.plan.compression.held;
        let interval = Duration::from_secs(5);
        let mut runs = vec![
            (Kind::Chunkstream, Route::Sse, Ask::Identity),
            (Kind::Chunkstream, Route::Sse, Ask::Compressed),
            (Kind::Chunkstream, Route::Ws, Ask::Identity),
            (Kind::Chunkstream, Route::Ws, Ask::Compressed),
        ];
        if self.launcher.python_ws.is_some() {
            runs.push((Kind::PyWsPlain, Route::Ws, Ask::Identity));
            runs.push((Kind::PyWs, Route::Ws, Ask::Compressed));
        }
        let mut kib = BTreeMap::new();
        let mut raw = serde_json::Map::new();
        for (kind, route, ask) in runs {
            let server = self.launcher.start(kind).await?;
            // Let start-up settle, then measure from idle.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let held = load::held_asking(
                server.addr,
                route,
                ask,
                n,
                interval,
                self.plan.sse_hold,
                || server.rss_kib(),
            )
            .await?;
            let per_conn = held.rss_held_kib.saturating_sub(held.rss_before_kib) as f64
                / held.held.max(1) as f64;
            let negotiated = held.negotiated.unwrap_or("none");
            println!(
                "  held {} {} {}: {} of {n} held ({negotiated}), {per_conn:.1} KiB each{}",
                kind.name(),
                route.name(),
                ask.name(route),
                held.held,
                held.first_error
                    .as_deref()
                    .map(|e| format!(" (first error: {e})"))
                    .unwrap_or_default()
            );
            kib.insert(
                (kind.name(), route.name(), ask.name(route)),
                (per_conn, negotiated, held.held),
            );
            raw.insert(
                format!("{} {} {}", kind.name(), route.name(), ask.name(route)),
                json!({"wanted": n, "held": held.held, "failed": held.failed,
                       "negotiated": negotiated, "kib_per_conn": per_conn,
                       "rss_before_kib": held.rss_before_kib, "rss_held_kib": held.rss_held_kib,
                       "lag_ms_p99": percentile(&held.lag_ms, 99.0),
                       "first_error": held.first_error}),
            );
            drop(server);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let pairs = [
            (Kind::Chunkstream, Route::Sse),
            (Kind::Chunkstream, Route::Ws),
            (Kind::PyWs, Route::Ws),
        ];
        for (kind, route) in pairs {
            let plain_kind = if kind == Kind::PyWs {
                Kind::PyWsPlain
            } else {
                kind
            };
            let (Some(plain), Some(compressed)) = (
                kib.get(&(plain_kind.name(), route.name(), Ask::Identity.name(route))),
                kib.get(&(kind.name(), route.name(), Ask::Compressed.name(route))),
            ) else {
                continue;
            };
            let ratio = compressed.0 / plain.0.max(1e-9);
            let all_held = plain.2 == n && compressed.2 == n;
            let (target, status) = if compressed.1 == "identity" {
                (
                    "(compression declined: nothing to hold against identity)",
                    Status::Info,
                )
            } else if kind == Kind::Chunkstream {
                (
                    "compressed ≤ 2× identity (issue 25: ~20 KiB)",
                    Status::check(ratio <= 2.0 && all_held),
                )
            } else {
                ("(peer)", Status::Info)
            };
            let who = if kind == Kind::PyWs {
                format!(
                    "python websockets {} defaults",
                    crate::pyws::PyWs::pinned().join(" ")
                )
            } else {
                kind.name().to_owned()
            };
            self.report.row(
                format!(
                    "compression, held: {who}, {n} {} streams × 1 chunk per 5 s, memory per stream",
                    route.name()
                ),
                format!(
                    "identity {:.1} KiB; {} {:.1} KiB (RSS per held stream)",
                    plain.0,
                    came(route, Ask::Compressed, compressed.1),
                    compressed.0
                ),
                format!(
                    "{ratio:.2}× identity ({:+.1} KiB); held {} and {} of {n}",
                    compressed.0 - plain.0,
                    plain.2,
                    compressed.2
                ),
                target,
                status,
            );
        }
        Ok(serde_json::Value::Object(raw))
    }

    /// Bytes per chunk on the wire, transport × encoding, paced and flat out.
    fn compression_plot(
        &self,
        paced: &Table<PerChunk>,
        flat: &Table<PerChunk>,
    ) -> anyhow::Result<()> {
        let cs = Kind::Chunkstream.name();
        let axum = Kind::AxumGzip.name();
        let mut categories = Vec::new();
        let mut series = vec![
            ("chunkstream identity".to_owned(), Vec::new()),
            (
                "chunkstream compressed (gzip, permessage-deflate asked)".to_owned(),
                Vec::new(),
            ),
            (
                "axum + CompressionLayer (gzip asked)".to_owned(),
                Vec::new(),
            ),
            (
                "python websockets (permessage-deflate asked)".to_owned(),
                Vec::new(),
            ),
        ];
        for (how, table) in [("paced", paced), ("flat", flat)] {
            for route in ROUTES {
                categories.push(format!("{} {how}", route.name()));
                let get = |server, ask: Ask| {
                    table
                        .get(&(server, route.name(), ask.name(route)))
                        .map(|p| p.wire)
                };
                series[0].1.push(get(cs, Ask::Identity));
                series[1].1.push(get(cs, Ask::Compressed));
                series[2].1.push(get(axum, Ask::Compressed));
                series[3].1.push(get(Kind::PyWs.name(), Ask::Compressed));
            }
        }
        // A peer not measured (python skipped) has no bars and no legend entry.
        series.retain(|(_, values)| values.iter().any(Option::is_some));
        plot::bars(
            &self.plan.results.join("compression-bytes-per-chunk.svg"),
            "bytes per chunk on the wire (HTTP/1.1 chunk framing and WebSocket frame headers in)",
            "bytes per chunk",
            &categories,
            &series,
        )
    }
}

/// The `chunkstream_bytes_sent_total` labels of a stream of `route` (its table name) that
/// came `negotiated`.
fn metric_key(route: &str, negotiated: &str) -> (String, String) {
    let transport = route.to_ascii_lowercase();
    let encoding = match negotiated {
        "permessage-deflate" => "deflate",
        other => other,
    };
    (transport, encoding.to_owned())
}

/// A table as JSON: `{"server": {"route": {"ask": value}}}`.
fn table_json<T: serde::Serialize>(table: &Table<T>) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for ((server, route, ask), value) in table {
        let by_route = out
            .entry(server.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("an object");
        let by_ask = by_route
            .entry(route.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("an object");
        by_ask.insert(
            ask.to_string(),
            serde_json::to_value(value).unwrap_or_default(),
        );
    }
    serde_json::Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_stream_s_lag_is_counted_from_its_first_chunk() {
        let start = std::time::Instant::now();
        let ms = Duration::from_millis;
        let read = WholeStream {
            negotiated: "gzip",
            chunks: 3,
            wire_bytes: 90,
            sent_bytes: 60,
            decoded_bytes: 210,
            arrivals: vec![start, start + ms(10), start + ms(23)],
            secs: 0.03,
        };
        let p = PerChunk::new(&read, Some(ms(10)));
        assert_eq!((p.sent, p.wire, p.decoded), (20.0, 30.0, 70.0));
        assert_eq!(p.lag_ms.len(), 2);
        assert!(p.lag_ms[0].abs() < 1e-9 && (p.lag_ms[1] - 3.0).abs() < 1e-9);
    }
}
