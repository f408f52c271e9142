//! The `webtransport` scenario (issue 27): WebTransport over HTTP/3 beside the WebSocket,
//! on the same chunkstream server, in the same runs.
//!
//! - **Flat out**: whole sessions (streams) of the same count of chunks, read at once over
//!   WebTransport and over WebSocket, in turn within each run: chunks per second and the
//!   server's CPU per chunk, medians and the median of the per-run ratios WT / WS. JSON
//!   Lines over HTTP/1.1 runs beside them: the very bytes WebTransport sends (one chunk's
//!   JSON per line, coalesced into the same writes), over TCP, so that WT / JSONL is what
//!   QUIC costs per byte, apart from the framing (a WebSocket sends one message per chunk).
//! - **First chunk** of a paced stream, from the start of the connect (WebTransport: the QUIC
//!   and TLS 1.3 handshake, then HTTP/3's extended CONNECT; WebSocket: the TCP connect, then
//!   the HTTP/1.1 upgrade), and from the session's `ready` (WebSocket: the `101`).
//! - **Memory per held session**: N sessions at one chunk per 5 s, each transport on a fresh
//!   server, repeated; server RSS delta / N, and the server's CPU while they are held.

use std::time::Duration;

use serde_json::json;

use crate::{
    load::{self, Ask, Route},
    procs::{Kind, Server},
    report::{Status, median, percentile, si, side_by_side},
    scenarios::{Bench, ratios},
    wt,
};

/// The flat-out shapes: sessions at once, chunks per session (the same for both transports).
const FLAT: [(usize, u64); 2] = [(1, 2_000_000), (10, 300_000)];

/// The flat-out columns, in table order.
const TRANSPORTS: [&str; 3] = ["WebTransport", "WebSocket", "JSON Lines"];

/// The paced stream whose first chunk is timed (as the `first-chunk` scenario's).
const PACED: &str = "count=2&interval_ms=1000";

/// The interval of the held sessions (as `sse-held`'s).
const HELD_INTERVAL: Duration = Duration::from_secs(5);

impl Bench {
    /// WebTransport beside WebSocket: flat out, first chunk, memory per held session.
    pub async fn webtransport(&mut self) -> anyhow::Result<()> {
        let server = self.launcher.start(Kind::Chunkstream).await?;
        let Some(client) = wt::Client::new(server.addr).await? else {
            self.report.row(
                "WebTransport beside WebSocket",
                "",
                "",
                "(measured)",
                Status::RouteMissing,
            );
            return Ok(());
        };
        let mut raw = serde_json::Map::new();
        raw.insert("flat".to_owned(), self.wt_flat(&server, &client).await?);
        raw.insert(
            "first_chunk".to_owned(),
            self.wt_first_chunk(&server, &client).await?,
        );
        drop(client);
        drop(server);
        raw.insert("held".to_owned(), self.wt_held().await?);
        self.report.raw("webtransport", raw);
        Ok(())
    }

    /// Whole streams read flat out, WT and WS in turn within each run.
    async fn wt_flat(
        &mut self,
        server: &Server,
        client: &wt::Client,
    ) -> anyhow::Result<serde_json::Value> {
        let mut raw = Vec::new();
        for (conns, count) in FLAT {
            // [WT, WS, JSON Lines]
            let mut rates = [Vec::new(), Vec::new(), Vec::new()];
            let mut cpu = [Vec::new(), Vec::new(), Vec::new()];
            for run in 0..self.plan.runs {
                // Rotate which goes first, so that none always follows another.
                for i in (0..3).map(|k| (k + run) % 3) {
                    let window = match i {
                        0 => wt::whole_sessions(client, count, conns, || server.cpu()).await?,
                        _ => {
                            let route = if i == 1 { Route::Ws } else { Route::Jsonl };
                            load::whole_streams(
                                server.addr,
                                route,
                                Ask::Identity,
                                count,
                                conns,
                                || server.cpu(),
                            )
                            .await?
                        }
                    };
                    rates[i].push(window.rate);
                    cpu[i].extend(window.cpu_ns_per_chunk);
                    println!(
                        "  run {run}: {conns} × {count} flat out, {}: {} chunks/s, {:.0} ns CPU \
                         each",
                        TRANSPORTS[i],
                        si(window.rate),
                        window.cpu_ns_per_chunk.unwrap_or(0.0)
                    );
                    // Let the server close the streams before the next load.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
            let ratio = |i: usize, j: usize| {
                (
                    median(&ratios(&rates[i], &rates[j])),
                    median(&ratios(&cpu[i], &cpu[j])),
                )
            };
            let (ws_rate, ws_cpu) = ratio(0, 1);
            let (jsonl_rate, jsonl_cpu) = ratio(0, 2);
            let sessions = if conns == 1 {
                "1 session".to_owned()
            } else {
                format!("{conns} sessions")
            };
            self.report.row(
                format!(
                    "WebTransport vs WebSocket (and JSON Lines, the same bytes over TCP): \
                     {sessions} × {} chunks flat out",
                    si(count as f64)
                ),
                side_by_side(
                    &["WT", "WS", "JSONL"],
                    "chunks/s",
                    ("ns", "server CPU each"),
                    0,
                    &rates,
                    &cpu,
                ),
                format!(
                    "WT / WS: {ws_rate:.2}× rate, {ws_cpu:.2}× CPU per chunk; WT / JSONL: \
                     {jsonl_rate:.2}× rate, {jsonl_cpu:.2}× CPU"
                ),
                "(measured)",
                Status::Info,
            );
            raw.push(json!({"sessions": conns, "count": count,
                "chunks_per_s": {"wt": rates[0], "ws": rates[1], "jsonl": rates[2]},
                "server_cpu_ns_per_chunk": {"wt": cpu[0], "ws": cpu[1], "jsonl": cpu[2]}}));
        }
        Ok(json!(raw))
    }

    /// Connect → first chunk, and ready → first chunk, of a paced stream.
    async fn wt_first_chunk(
        &mut self,
        server: &Server,
        client: &wt::Client,
    ) -> anyhow::Result<serde_json::Value> {
        // [WT, WS] × [from connect, from ready]
        let mut connect = [Vec::new(), Vec::new()];
        let mut ready = [Vec::new(), Vec::new()];
        for _ in 0..self.plan.first_chunk_samples {
            let (c, r) = wt::first_chunk(client, PACED).await?;
            connect[0].push(c.as_secs_f64() * 1e3);
            ready[0].push(r.as_secs_f64() * 1e3);
            let (c, r) = load::first_chunk_from_connect(server.addr, Route::Ws, PACED).await?;
            connect[1].push(c.as_secs_f64() * 1e3);
            ready[1].push(r.as_secs_f64() * 1e3);
        }
        let ms = |v: &[f64]| format!("{:.2} ms (p99 {:.2})", median(v), percentile(v, 99.0));
        self.report.row(
            "first chunk, connect → first chunk (interval 1 s): WT handshake is QUIC + TLS 1.3 \
             + HTTP/3 CONNECT, WS is TCP + HTTP/1.1 upgrade, no TLS",
            format!("WT {}; WS {}", ms(&connect[0]), ms(&connect[1])),
            format!(
                "WT / WS: {:.1}× (medians); n = {} each",
                median(&connect[0]) / median(&connect[1]).max(1e-9),
                connect[0].len()
            ),
            "(measured)",
            Status::Info,
        );
        self.report.row(
            "first chunk after the session is ready (WT `ready`, WS the `101`)",
            format!("WT {}; WS {}", ms(&ready[0]), ms(&ready[1])),
            format!("n = {} each", ready[0].len()),
            "< 2 ms",
            Status::check(percentile(&ready[0], 99.0) < 2.0),
        );
        Ok(json!({"connect_ms": {"wt": connect[0], "ws": connect[1]},
                  "ready_ms": {"wt": ready[0], "ws": ready[1]}}))
    }

    /// N paced sessions held, each transport on a fresh server, in turn, repeated.
    async fn wt_held(&mut self) -> anyhow::Result<serde_json::Value> {
        let n = self.plan.wt_held;
        let hold = self.plan.wt_hold;
        // [WT, WS]
        let mut per_session = [Vec::new(), Vec::new()];
        let mut cpu = [Vec::new(), Vec::new()];
        let mut raw = Vec::new();
        for run in 0..self.plan.held_runs {
            for i in [0, 1] {
                let server = self.launcher.start(Kind::Chunkstream).await?;
                tokio::time::sleep(Duration::from_millis(300)).await;
                let (held, failed, before, after, cpu_pct, first_error) = if i == 0 {
                    let client = wt::Client::new(server.addr)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no WebTransport on a fresh server"))?;
                    // The client's GET /stream/wt is answered: measure from idle again.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let h = wt::held(
                        &client,
                        n,
                        HELD_INTERVAL,
                        hold,
                        || server.rss_kib(),
                        || server.cpu(),
                    )
                    .await?;
                    (
                        h.held,
                        h.failed,
                        h.rss_before_kib,
                        h.rss_held_kib,
                        h.cpu_held_pct,
                        h.first_error,
                    )
                } else {
                    let cpu_at = std::cell::Cell::new(None);
                    let h = load::held(server.addr, Route::Ws, n, HELD_INTERVAL, hold, || {
                        // `held` reads RSS before, during the ramp, and once at the end of
                        // the hold: the CPU is taken at its last-but-one and last readings.
                        cpu_at.set(Some((cpu_at.get().map(|(_, now)| now), server.cpu())));
                        server.rss_kib()
                    })
                    .await?;
                    let cpu_pct = match cpu_at.get() {
                        Some((Some(Some(a)), Some(b))) => {
                            (b - a).as_secs_f64() / hold.as_secs_f64() * 100.0
                        }
                        _ => 0.0,
                    };
                    (
                        h.held,
                        h.failed,
                        h.rss_before_kib,
                        h.rss_held_kib,
                        cpu_pct,
                        h.first_error,
                    )
                };
                let kib = after.saturating_sub(before) as f64 / held.max(1) as f64;
                let name = ["WebTransport", "WebSocket"][i];
                println!(
                    "  run {run}: {name}: {held}/{n} held ({failed} failed), RSS {before} → \
                     {after} KiB: {kib:.1} KiB each; server CPU while held {cpu_pct:.1}%{}",
                    first_error
                        .as_deref()
                        .map(|e| format!(" (first error: {e})"))
                        .unwrap_or_default()
                );
                if held == n {
                    per_session[i].push(kib);
                    cpu[i].push(cpu_pct);
                }
                raw.push(
                    json!({"transport": name, "run": run, "wanted": n, "held": held,
                    "failed": failed, "rss_before_kib": before, "rss_held_kib": after,
                    "kib_per_session": kib, "server_cpu_pct_held": cpu_pct,
                    "first_error": first_error}),
                );
                drop(server);
                // Let the kernel reap the closed sockets before the next server.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        self.report.row(
            format!("memory per held session: {n} sessions × 1 chunk per 5 s, fresh server each"),
            format!(
                "WT {:.1} KiB RSS each, server CPU {:.1}% of a core; WS {:.1} KiB, {:.1}%",
                median(&per_session[0]),
                median(&cpu[0]),
                median(&per_session[1]),
                median(&cpu[1]),
            ),
            format!(
                "WT / WS: {:.1}× memory; runs with all held: WT {}, WS {} of {}",
                median(&per_session[0]) / median(&per_session[1]).max(1e-9),
                per_session[0].len(),
                per_session[1].len(),
                self.plan.held_runs
            ),
            "(measured)",
            if per_session[0].is_empty() || per_session[1].is_empty() {
                Status::Failed
            } else {
                Status::Info
            },
        );
        Ok(json!(raw))
    }
}
