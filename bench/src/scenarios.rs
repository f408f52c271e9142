//! The scenarios of issue 7's targets table: each runs its load against chunkstream and the
//! baselines, several times, interleaved (so the machine's noise hits every server alike),
//! and reports medians and same-run ratios. With `--compare-bin`, a second chunkstream
//! ("before") is interleaved too, and each scenario adds a row of after / before ratios.
//! The compression scenario is in `compression.rs`, the webtransport one in
//! `webtransport.rs`.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;

use crate::{
    load::{self, Route},
    plot::{self, Series},
    procs::{Kind, Launcher, Server, tcp_buffers_kib},
    report::{Report, Status, median, percentile, si, side_by_side},
};

/// How long and how hard to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Runs per throughput scenario (the median is reported).
    pub runs: usize,
    /// Length of each flat-out or request-loop run.
    pub run_time: Duration,
    /// SSE streams held in the 1-event-per-5-s scenario.
    pub sse_conns: usize,
    /// How long all of them are held.
    pub sse_hold: Duration,
    /// Also hold as many SSE streams as the fd limit allows (chunkstream only).
    pub sse_max: Option<usize>,
    /// Samples of first-chunk latency per route.
    pub first_chunk_samples: usize,
    /// Chunks of the pacing-drift streams (10 ms apart).
    pub drift_chunks: u64,
    /// Interval of the 1 k-chunk stream in the memory scenario.
    pub small_interval: Duration,
    /// Longest the 100 M-chunk stream is read in the memory scenario.
    pub big_cap: Duration,
    /// How long the slow reader stops reading.
    pub stall: Duration,
    /// Streams nobody reads, per transport, in the stalled-clients scenario.
    pub stalled_conns: usize,
    /// The compression scenario's sizes.
    pub compression: CompressionPlan,
    /// Sessions held per transport in the webtransport scenario's memory measure.
    pub wt_held: usize,
    /// How long they are held.
    pub wt_hold: Duration,
    /// How many times each is held (a fresh server each time; the median is reported).
    pub held_runs: usize,
    /// What the `--compare-bin` server is called, when one is measured beside chunkstream.
    pub compare_label: Option<String>,
    /// Where plots go.
    pub results: PathBuf,
}

/// How much the compression scenario measures.
#[derive(Debug, Clone)]
pub struct CompressionPlan {
    /// Chunks of each paced stream (each flushed alone).
    pub paced_chunks: u64,
    /// Their interval.
    pub paced_interval: Duration,
    /// Chunks of each flat-out stream whose bytes are counted.
    pub flat_chunks: u64,
    /// Streams held (one chunk per 5 s) per transport and encoding.
    pub held: usize,
}

impl Plan {
    /// The full suite (about 6–8 minutes here).
    pub fn full(results: PathBuf, fd_limit: u64) -> Self {
        Self {
            runs: 5,
            run_time: Duration::from_secs(3),
            sse_conns: 10_000,
            sse_hold: Duration::from_secs(12),
            // Client and server are separate processes, each with the whole limit; keep
            // a margin for listeners, logs and the runtime.
            sse_max: usize::try_from(fd_limit)
                .ok()
                .filter(|&l| l > 12_000)
                .map(|l| l - 1_000),
            first_chunk_samples: 30,
            drift_chunks: 1_001,
            small_interval: Duration::from_millis(5),
            big_cap: Duration::from_secs(20),
            stall: Duration::from_secs(10),
            stalled_conns: 500,
            compression: CompressionPlan {
                paced_chunks: 2_000,
                paced_interval: Duration::from_millis(2),
                flat_chunks: 300_000,
                held: 2_000,
            },
            wt_held: 1_000,
            wt_hold: Duration::from_secs(6),
            held_runs: 3,
            compare_label: None,
            results,
        }
    }

    /// A quick look (about 2 minutes).
    pub fn quick(results: PathBuf) -> Self {
        Self {
            runs: 3,
            run_time: Duration::from_secs(1),
            sse_conns: 2_000,
            sse_hold: Duration::from_secs(6),
            sse_max: None,
            first_chunk_samples: 10,
            drift_chunks: 201,
            small_interval: Duration::from_millis(2),
            big_cap: Duration::from_secs(6),
            stall: Duration::from_secs(10),
            stalled_conns: 200,
            compression: CompressionPlan {
                paced_chunks: 2_000,
                paced_interval: Duration::from_millis(2),
                flat_chunks: 200_000,
                held: 1_000,
            },
            wt_held: 1_000,
            wt_hold: Duration::from_secs(3),
            held_runs: 1,
            compare_label: None,
            results,
        }
    }
}

/// Runs scenarios, keeps the report.
pub struct Bench {
    /// How to start servers.
    pub launcher: Launcher,
    /// Durations and sizes.
    pub plan: Plan,
    /// What was measured.
    pub report: Report,
}

/// How long the stalled scenario watches the server hand memory back once its clients are
/// gone.
const HAND_BACK_WITHIN: Duration = Duration::from_secs(15);

/// The scenario names `--only` accepts, in the order `all` runs them.
pub const NAMES: [&str; 13] = [
    "text-10m",
    "jsonl-10m",
    "text-defaults",
    "sse-flat",
    "ws-flat",
    "first-chunk",
    "drift",
    "memory",
    "slow-reader",
    "stalled",
    "sse-held",
    "compression",
    "webtransport",
];

impl Bench {
    /// Runs the scenarios named in `only` (all when empty), in the order of [`NAMES`].
    pub async fn run(&mut self, only: &[String]) -> anyhow::Result<()> {
        let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
        // The throughput scenarios share one instance of each server, started now.
        let shared_needed = NAMES[..7].iter().any(|n| wanted(n));
        let servers = if shared_needed {
            Some(Servers {
                chunkstream: self.launcher.start(Kind::Chunkstream).await?,
                floor: self.launcher.start(Kind::Floor).await?,
                axum: self.launcher.start(Kind::Axum).await?,
                compare: match self.plan.compare_label {
                    Some(_) => Some(self.launcher.start(Kind::Compare).await?),
                    None => None,
                },
            })
        } else {
            None
        };
        for name in NAMES {
            if !wanted(name) {
                continue;
            }
            println!("\n## {name}");
            let result = match (name, servers.as_ref()) {
                ("text-10m", Some(s)) => self.text_10m(s).await,
                ("jsonl-10m", Some(s)) => self.jsonl_10m(s).await,
                ("text-defaults", Some(s)) => self.text_defaults(s).await,
                ("sse-flat", Some(s)) => self.flat(s, Route::Sse, 10).await,
                ("ws-flat", Some(s)) => self.flat(s, Route::Ws, 100).await,
                ("first-chunk", Some(s)) => self.first_chunk(s).await,
                ("drift", Some(s)) => self.drift(s).await,
                ("memory", _) => self.memory().await,
                ("slow-reader", _) => self.slow_reader().await,
                ("stalled", _) => self.stalled().await,
                ("sse-held", _) => self.sse_held().await,
                ("compression", _) => self.compression().await,
                ("webtransport", _) => self.webtransport().await,
                _ => Ok(()),
            };
            if let Err(e) = result {
                println!("  !! {name} failed: {e:#}");
                self.report
                    .row(name, format!("failed: {e:#}"), "", "", Status::Failed);
            }
        }
        Ok(())
    }

    /// `/stream?count=10000000` on one connection, lines/s, vs the floor and axum.
    async fn text_10m(&mut self, s: &Servers) -> anyhow::Result<()> {
        let rates = self.lines_10m(s, Route::Text, "≥ 1.0× floor").await?;
        let series = ["chunkstream", "hyper floor", "axum (idiomatic)"]
            .iter()
            .zip(&rates)
            .map(|(name, r)| Series {
                name: (*name).to_owned(),
                points: r
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| ((i + 1) as f64, v / 1e6))
                    .collect(),
            })
            .collect::<Vec<_>>();
        plot::lines(
            &self.plan.results.join("lines-per-second.svg"),
            "/stream?count=10000000, one connection: lines/s per run",
            "run (the three servers interleaved in each run)",
            "million lines/s",
            &series,
        )
    }

    /// `/stream/jsonl?count=10000000` on one connection, lines/s, vs the floor and axum.
    async fn jsonl_10m(&mut self, s: &Servers) -> anyhow::Result<()> {
        self.lines_10m(s, Route::Jsonl, "≥ 1.0× floor, as text")
            .await
            .map(drop)
    }

    /// 10 M lines of `route` (text or JSON Lines) on one connection, lines/s and CPU per
    /// line, run by run, chunkstream vs the floor and axum; returns each server's rates.
    async fn lines_10m(
        &mut self,
        s: &Servers,
        route: Route,
        target: &str,
    ) -> anyhow::Result<[Vec<f64>; 3]> {
        const COUNT: u64 = 10_000_000;
        let order = s.in_order(&[&s.chunkstream, &s.floor, &s.axum]);
        let mut rates = vec![Vec::new(); order.len()];
        let mut cpu = vec![Vec::new(); order.len()];
        for run in 0..self.plan.runs {
            for (i, server) in order.iter().enumerate() {
                let before = server.cpu();
                let rate = load::line_rate(server.addr, route, COUNT).await?;
                rates[i].push(rate);
                if let (Some(b), Some(a)) = (before, server.cpu()) {
                    cpu[i].push((a - b).as_secs_f64() * 1e9 / COUNT as f64);
                }
                println!(
                    "  run {run}: {:<20} {:>8} lines/s",
                    server.kind.name(),
                    si(rate)
                );
            }
        }
        let vs_floor = ratios(&rates[0], &rates[1]);
        let vs_axum = ratios(&rates[0], &rates[2]);
        let r_floor = median(&vs_floor);
        let work = format!("`{}?count=10000000`, 1 connection", route.path());
        self.report.row(
            &work,
            side_by_side(
                &["chunkstream", "floor", "axum"],
                "lines/s",
                ("ns", "CPU/line"),
                0,
                &rates,
                &cpu,
            ),
            format!("{r_floor:.2}× floor, {:.1}× axum", median(&vs_axum)),
            target,
            Status::check(r_floor >= 1.0),
        );
        let key = match route {
            Route::Jsonl => "jsonl_10m_lines_per_s",
            _ => "text_10m_lines_per_s",
        };
        let mut raw = serde_json::json!({"chunkstream": rates[0], "floor": rates[1], "axum": rates[2],
                           "server_cpu_ns_per_line": {"chunkstream": cpu[0], "floor": cpu[1], "axum": cpu[2]}});
        if order.len() > 3 {
            self.compare_row(
                &work,
                ("lines/s", "ns CPU/line", 0),
                (&rates[0], &cpu[0]),
                (&rates[3], &cpu[3]),
            );
            raw["before"] = serde_json::json!(rates[3]);
            raw["server_cpu_ns_per_line"]["before"] = serde_json::json!(cpu[3]);
        }
        self.report.raw(key, raw);
        let mut three = rates.into_iter();
        Ok([
            three.next().unwrap_or_default(),
            three.next().unwrap_or_default(),
            three.next().unwrap_or_default(),
        ])
    }

    /// A row with the `--compare-bin` server ("before") beside chunkstream ("after") in
    /// scenario `work`: both medians and the median of the per-run ratios after / before,
    /// of the rate and of the CPU per unit. `units` are the rate's, the CPU's and the CPU's
    /// decimals.
    fn compare_row(
        &mut self,
        work: &str,
        units: (&str, &str, usize),
        after: (&[f64], &[f64]),
        before: (&[f64], &[f64]),
    ) {
        let (rate_unit, cpu_unit, decimals) = units;
        let label = self.plan.compare_label.clone().unwrap_or_default();
        let time_unit = cpu_unit.split(' ').next().unwrap_or_default();
        self.report.row(
            format!("{work}: after vs before (`{label}`)"),
            format!(
                "after {} {rate_unit} ({:.decimals$} {cpu_unit}); before {} ({:.decimals$} \
                 {time_unit})",
                si(median(after.0)),
                median(after.1),
                si(median(before.0)),
                median(before.1),
            ),
            format!(
                "after / before: {:.2}× rate, {:.2}× CPU",
                median(&ratios(after.0, before.0)),
                median(&ratios(after.1, before.1)),
            ),
            "same run (uncompressed path not slower)",
            Status::Info,
        );
    }

    /// `/stream` with its defaults, 64 keep-alive connections, req/s.
    async fn text_defaults(&mut self, s: &Servers) -> anyhow::Result<()> {
        let order = s.in_order(&[&s.chunkstream, &s.floor, &s.axum]);
        let mut rates = vec![Vec::new(); order.len()];
        let mut cpu = vec![Vec::new(); order.len()];
        for run in 0..self.plan.runs {
            for (i, server) in order.iter().enumerate() {
                let before = server.cpu();
                let rate = load::request_loop(server.addr, 64, self.plan.run_time).await?;
                rates[i].push(rate);
                if let (Some(b), Some(a)) = (before, server.cpu()) {
                    let requests = rate * self.plan.run_time.as_secs_f64();
                    cpu[i].push((a - b).as_secs_f64() * 1e6 / requests);
                }
                println!(
                    "  run {run}: {:<20} {:>8} req/s",
                    server.kind.name(),
                    si(rate)
                );
            }
        }
        let vs_axum = median(&ratios(&rates[0], &rates[2]));
        let vs_floor = median(&ratios(&rates[0], &rates[1]));
        let work = "`/stream` defaults, 64 connections (keep-alive loop)";
        self.report.row(
            work,
            side_by_side(
                &["chunkstream", "floor", "axum"],
                "req/s",
                ("µs", "CPU/req"),
                1,
                &rates,
                &cpu,
            ),
            format!("{vs_axum:.2}× axum, {vs_floor:.2}× floor"),
            "≥ 1.1× axum, ≥ 0.8× floor",
            Status::check(vs_axum >= 1.1 && vs_floor >= 0.8),
        );
        let mut raw = serde_json::json!({"chunkstream": rates[0], "floor": rates[1], "axum": rates[2],
                           "server_cpu_us_per_req": {"chunkstream": cpu[0], "floor": cpu[1], "axum": cpu[2]}});
        if order.len() > 3 {
            self.compare_row(
                work,
                ("req/s", "µs CPU/req", 1),
                (&rates[0], &cpu[0]),
                (&rates[3], &cpu[3]),
            );
            raw["before"] = serde_json::json!(rates[3]);
            raw["server_cpu_us_per_req"]["before"] = serde_json::json!(cpu[3]);
        }
        self.report.raw("text_defaults_req_per_s", raw);
        Ok(())
    }

    /// SSE (10 connections) or WS (100 connections) read flat out: chunks/s vs axum.
    async fn flat(&mut self, s: &Servers, route: Route, conns: usize) -> anyhow::Result<()> {
        let (work, unit, target, factor) = match route {
            Route::Sse => ("SSE, 10 connections flat out", "events/s", "≥ 2× axum", 2.0),
            _ => ("WS, 100 connections flat out", "msgs/s", "≥ 3× axum", 3.0),
        };
        if !load::route_exists(s.chunkstream.addr, route).await? {
            self.report.row(work, "", "", target, Status::RouteMissing);
            return Ok(());
        }
        let order = s.in_order(&[&s.chunkstream, &s.axum]);
        let mut rates = vec![Vec::new(); order.len()];
        let mut cpu = vec![Vec::new(); order.len()];
        for run in 0..self.plan.runs {
            for (i, server) in order.iter().enumerate() {
                let window = load::flat_out(
                    server.addr,
                    route,
                    100_000_000,
                    conns,
                    self.plan.run_time,
                    || server.cpu(),
                )
                .await?;
                let rate = window.rate;
                rates[i].push(rate);
                cpu[i].extend(window.cpu_ns_per_chunk);
                println!(
                    "  run {run}: {:<20} {:>8} {unit}",
                    server.kind.name(),
                    si(rate)
                );
                // Let the server notice the closed streams before the next run.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        let vs_axum = median(&ratios(&rates[0], &rates[1]));
        self.report.row(
            work,
            side_by_side(
                &["chunkstream", "axum"],
                unit,
                ("ns", "CPU each"),
                0,
                &rates,
                &cpu,
            ),
            format!("{vs_axum:.2}× axum"),
            target,
            Status::check(vs_axum >= factor),
        );
        let key = if route == Route::Sse {
            "sse_flat"
        } else {
            "ws_flat"
        };
        let mut raw = serde_json::json!({"chunkstream": rates[0], "axum": rates[1],
                           "server_cpu_ns_per_chunk": {"chunkstream": cpu[0], "axum": cpu[1]}});
        if order.len() > 2 {
            let units = (unit, "ns CPU each", 0);
            self.compare_row(work, units, (&rates[0], &cpu[0]), (&rates[2], &cpu[2]));
            raw["before"] = serde_json::json!(rates[2]);
            raw["server_cpu_ns_per_chunk"]["before"] = serde_json::json!(cpu[2]);
        }
        self.report.raw(key, raw);
        Ok(())
    }

    /// Time to the first chunk of a stream paced 1 s apart, per route.
    async fn first_chunk(&mut self, s: &Servers) -> anyhow::Result<()> {
        let mut raw = serde_json::Map::new();
        for route in Route::ALL {
            if !load::route_exists(s.chunkstream.addr, route).await? {
                self.report.row(
                    format!("first chunk, interval 1 s, `{}`", route.path()),
                    "",
                    "",
                    "< 2 ms",
                    Status::RouteMissing,
                );
                continue;
            }
            let order = s.in_order(&[&s.chunkstream, &s.axum]);
            let mut samples = vec![Vec::new(); order.len()];
            for _ in 0..self.plan.first_chunk_samples {
                for (i, server) in order.iter().enumerate() {
                    let took =
                        load::first_chunk(server.addr, route, "count=2&interval_ms=1000").await?;
                    samples[i].push(took.as_secs_f64() * 1e3);
                }
            }
            let p99 = percentile(&samples[0], 99.0);
            self.report.row(
                format!("first chunk, interval 1 s, `{}`", route.path()),
                format!(
                    "chunkstream {:.2} ms (p99 {p99:.2}); axum {:.2} ms (p99 {:.2})",
                    median(&samples[0]),
                    median(&samples[1]),
                    percentile(&samples[1], 99.0)
                ),
                format!("n = {} each", samples[0].len()),
                "< 2 ms",
                Status::check(p99 < 2.0),
            );
            let mut entry =
                serde_json::json!({"chunkstream_ms": samples[0], "axum_ms": samples[1]});
            if let Some(before) = samples.get(2) {
                let label = self.plan.compare_label.clone().unwrap_or_default();
                self.report.row(
                    format!(
                        "first chunk, interval 1 s, `{}`: after vs before (`{label}`)",
                        route.path()
                    ),
                    format!(
                        "after {:.2} ms (p99 {p99:.2}); before {:.2} ms (p99 {:.2})",
                        median(&samples[0]),
                        median(before),
                        percentile(before, 99.0)
                    ),
                    format!(
                        "after / before: {:.2}× (medians)",
                        median(&samples[0]) / median(before).max(1e-9)
                    ),
                    "same run",
                    Status::Info,
                );
                entry["before_ms"] = serde_json::json!(before);
            }
            raw.insert(route.path().to_owned(), entry);
        }
        self.report.raw("first_chunk", raw);
        Ok(())
    }

    /// Pacing drift: `drift_chunks` chunks 10 ms apart, every route of both servers at once.
    async fn drift(&mut self, s: &Servers) -> anyhow::Result<()> {
        let interval = Duration::from_millis(10);
        let count = self.plan.drift_chunks;
        let mut routes = Vec::new();
        for route in Route::ALL {
            if load::route_exists(s.chunkstream.addr, route).await? {
                routes.push(route);
            }
        }
        let mut runs = Vec::new();
        for &route in &routes {
            for server in s.in_order(&[&s.chunkstream, &s.axum]) {
                let addr = server.addr;
                runs.push(async move {
                    let d = load::drift(addr, route, count, interval).await;
                    (server.kind, route, d)
                });
            }
        }
        let results = futures_util::future::join_all(runs).await;
        let mut measured = Vec::new();
        let mut worst = Duration::ZERO;
        let mut raw = serde_json::Map::new();
        for (kind, route, d) in results {
            let d = d.with_context(|| format!("{} {}", kind.name(), route.path()))?;
            if kind == Kind::Chunkstream {
                worst = worst.max(d);
            }
            measured.push(format!(
                "{} `{}` +{:.1} ms",
                kind.name(),
                route.path(),
                d.as_secs_f64() * 1e3
            ));
            raw.insert(
                format!("{} {}", kind.name(), route.path()),
                serde_json::json!(d.as_secs_f64() * 1e3),
            );
        }
        let missing = Route::ALL.len() - routes.len();
        self.report.row(
            format!("pacing drift, {} chunks 10 ms apart", count),
            measured.join("; "),
            if missing > 0 {
                format!("{missing} route(s) missing")
            } else {
                "late by, vs (count − 1) × interval".to_owned()
            },
            "no drift (< 1 interval)",
            Status::check(worst < interval),
        );
        self.report.raw("drift_ms", raw);
        Ok(())
    }

    /// RSS while streaming 100 M chunks vs while streaming 1 k (each on a fresh server).
    async fn memory(&mut self) -> anyhow::Result<()> {
        let mut series = Vec::new();
        let mut raw = Vec::new();
        let small_interval = self.plan.small_interval.as_millis();
        let mut kinds = vec![Kind::Chunkstream];
        if self.plan.compare_label.is_some() {
            kinds.push(Kind::Compare);
        }
        for kind in kinds {
            let mut peaks = Vec::new();
            for (label, query, cap) in [
                (
                    format!("1 k chunks, {small_interval} ms apart"),
                    format!("count=1000&interval_ms={small_interval}"),
                    Duration::from_secs(60),
                ),
                (
                    "100 M chunks, flat out".to_owned(),
                    "count=100000000".to_owned(),
                    self.plan.big_cap,
                ),
            ] {
                let server = self.launcher.start(kind).await?;
                let idle = server.rss_kib().unwrap_or(0);
                let (points, lines, secs) = stream_sampling_rss(&server, &query, cap).await?;
                let peak = points.iter().map(|p| p.1).fold(0.0, f64::max);
                println!(
                    "  {} {label}: idle {idle} KiB, peak {peak:.0} KiB, {lines} lines in {secs:.1} s",
                    kind.name()
                );
                peaks.push((label.clone(), idle, peak, lines));
                series.push(Series {
                    name: match kind {
                        Kind::Compare => format!("before: {label}"),
                        _ => label,
                    },
                    points: points.iter().map(|&(t, kib)| (t, kib / 1024.0)).collect(),
                });
            }
            let diff_kib = peaks[1].2 - peaks[0].2;
            let (work, target, status) = match kind {
                Kind::Compare => (
                    format!(
                        "memory vs stream size (RSS while streaming): before (`{}`)",
                        self.plan.compare_label.clone().unwrap_or_default()
                    ),
                    "same run",
                    Status::Info,
                ),
                _ => (
                    "memory vs stream size (RSS while streaming)".to_owned(),
                    "within 1 MiB",
                    Status::check(diff_kib.abs() <= 1024.0),
                ),
            };
            self.report.row(
                work,
                format!(
                    "peak {:.1} MiB with 1 k chunks; {:.1} MiB with 100 M ({} lines read)",
                    peaks[0].2 / 1024.0,
                    peaks[1].2 / 1024.0,
                    si(peaks[1].3 as f64),
                ),
                format!("100 M − 1 k: {:+.0} KiB", diff_kib),
                target,
                status,
            );
            raw.extend(peaks.iter().map(|p| {
                serde_json::json!({"server": kind.name(), "stream": p.0, "idle": p.1,
                                   "peak": p.2, "lines": p.3})
            }));
        }
        self.report.raw("memory_rss_kib", raw);
        plot::lines(
            &self.plan.results.join("rss-vs-stream-size.svg"),
            "chunkstream RSS while streaming: 1 k vs 100 M chunks",
            "seconds since the request",
            "server RSS, MiB",
            &series,
        )
    }

    /// A client that stops reading a 10 M-chunk stream: RSS growth and server CPU.
    async fn slow_reader(&mut self) -> anyhow::Result<()> {
        let server = self.launcher.start(Kind::Chunkstream).await?;
        let r = reader_stalls_then_leaves(&server, self.plan.stall).await?;
        let growth = r.growth_kib();
        self.report.row(
            format!(
                "slow reader: 10 M-chunk stream, reading stops for {} s",
                self.plan.stall.as_secs()
            ),
            format!(
                "RSS idle {} KiB, reading {} KiB, stalled peak {} KiB, after {} KiB; \
                 server CPU {:.1}% while stalled, {:.1}% after the client left",
                r.idle_kib,
                r.reading_kib,
                r.peak_kib,
                r.after_kib,
                r.cpu_stalled_pct,
                r.cpu_after_pct
            ),
            format!("growth over idle {growth} KiB"),
            "growth < 1 MiB, CPU ~0",
            Status::check(growth < 1024 && r.cpu_stalled_pct < 2.0 && r.cpu_after_pct < 2.0),
        );
        self.report.raw("slow_reader", &r);
        Ok(())
    }

    /// Clients that open a flat-out stream and never read it, on every transport: what each
    /// holds in the server's memory and in the kernel's socket buffers, once they are full.
    async fn stalled(&mut self) -> anyhow::Result<()> {
        let n = self.plan.stalled_conns;
        let mut raw = serde_json::Map::new();
        for route in Route::ALL {
            let server = self.launcher.start(Kind::Chunkstream).await?;
            let (Some(rss_before), Some(kernel_before)) = (server.rss_kib(), tcp_buffers_kib())
            else {
                anyhow::bail!("cannot read the server's RSS or the kernel's socket memory");
            };
            let mut conns = Vec::with_capacity(n);
            for _ in 0..n {
                conns.push(load::open(server.addr, route, "count=100000000", true, 4096).await?);
            }
            // The buffers fill within a moment (the streams are flat out): wait until RSS has
            // not moved by 1% for three samples in a row, at most 20 s.
            let mut rss = server.rss_kib().unwrap_or(rss_before);
            let mut steady = 0;
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let now = server.rss_kib().unwrap_or(rss);
                steady = if now.abs_diff(rss) * 100 <= rss {
                    steady + 1
                } else {
                    0
                };
                rss = now;
                if steady == 3 {
                    break;
                }
            }
            let kernel = tcp_buffers_kib().unwrap_or(kernel_before);
            let per_stream = rss.saturating_sub(rss_before) as f64 / n as f64;
            let kernel_per_stream = kernel.saturating_sub(kernel_before) as f64 / n as f64;
            println!(
                "  {}: {n} stalled, {per_stream:.1} KiB RSS each, {kernel_per_stream:.0} KiB of \
                 socket buffers each (both ends)",
                route.path()
            );
            self.report.row(
                format!(
                    "stalled clients: {n} `{}` streams nobody reads",
                    route.path()
                ),
                format!(
                    "{per_stream:.1} KiB server RSS per stream; {kernel_per_stream:.0} KiB of \
                     kernel socket buffers per stream, both ends on loopback"
                ),
                format!("RSS {rss_before} → {rss} KiB"),
                "≤ 128 KiB RSS per stream",
                Status::check(per_stream <= 128.0),
            );
            // Then the clients go: an idle server should hand the memory back by itself.
            // Measured as the share of what the streams added that is given back, and where
            // RSS settles against before the streams, HAND_BACK_WITHIN after the cut.
            drop(conns);
            let cut = std::time::Instant::now();
            let added = rss.saturating_sub(rss_before).max(1);
            let mut back_after = None;
            let mut rss_after = rss;
            while cut.elapsed() < HAND_BACK_WITHIN {
                tokio::time::sleep(Duration::from_millis(250)).await;
                rss_after = server.rss_kib().unwrap_or(rss_after);
                let given_back = rss.saturating_sub(rss_after);
                if back_after.is_none() && given_back * 10 >= added * 9 {
                    back_after = Some(cut.elapsed());
                }
            }
            let back = back_after.map_or_else(
                || format!("not within {} s", HAND_BACK_WITHIN.as_secs()),
                |after| format!("{:.1} s", after.as_secs_f64()),
            );
            let settled = rss_after.saturating_sub(rss_before);
            println!(
                "  {}: 90% of the streams' memory handed back {back} after they were cut; \
                 {settled} KiB above before them after {} s",
                route.path(),
                HAND_BACK_WITHIN.as_secs()
            );
            self.report.row(
                format!(
                    "memory handed back once {n} `{}` streams are cut",
                    route.path()
                ),
                format!(
                    "90% of what the streams added handed back: {back}; {settled} KiB above \
                     before the streams after {} s",
                    HAND_BACK_WITHIN.as_secs()
                ),
                format!("RSS {rss_before} → {rss} → {rss_after} KiB"),
                "90% back ≤ 10 s",
                Status::check(back_after.is_some_and(|after| after <= Duration::from_secs(10))),
            );
            raw.insert(
                route.path().to_owned(),
                serde_json::json!({
                    "streams": n,
                    "rss_before_kib": rss_before,
                    "rss_kib": rss,
                    "kernel_before_kib": kernel_before,
                    "kernel_kib": kernel,
                    "rss_after_cut_kib": rss_after,
                    "handed_back_secs": back_after.map(|after| after.as_secs_f64()),
                }),
            );
        }
        self.report.raw("stalled", &raw);
        Ok(())
    }

    /// Thousands of SSE streams, one event per 5 s: held, lag, RSS per connection.
    async fn sse_held(&mut self) -> anyhow::Result<()> {
        let interval = Duration::from_secs(5);
        let mut series = Vec::new();
        let mut sizes = vec![
            (Kind::Chunkstream, self.plan.sse_conns),
            (Kind::Axum, self.plan.sse_conns),
            (Kind::Floor, self.plan.sse_conns),
        ];
        if self.plan.compare_label.is_some() {
            sizes.push((Kind::Compare, self.plan.sse_conns));
        }
        if let Some(max) = self.plan.sse_max.filter(|&m| m > self.plan.sse_conns) {
            sizes.push((Kind::Chunkstream, max));
        }
        let mut raw = serde_json::Map::new();
        for (kind, n) in sizes {
            let server = self.launcher.start(kind).await?;
            if !load::route_exists(server.addr, Route::Sse).await? {
                self.report.row(
                    format!("SSE, {n} connections × 1 event per 5 s"),
                    "",
                    "",
                    "all held, p99 lag < 20 ms, ≤ 10 KiB RSS/conn",
                    Status::RouteMissing,
                );
                continue;
            }
            // Give the route probe's stream time to end, then measure from idle.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let held = load::held(
                server.addr,
                Route::Sse,
                n,
                interval,
                self.plan.sse_hold,
                || server.rss_kib(),
            )
            .await?;
            let per_conn = (held.rss_held_kib.saturating_sub(held.rss_before_kib)) as f64
                / held.held.max(1) as f64;
            let p99 = percentile(&held.lag_ms, 99.0);
            println!(
                "  {}: {n} wanted, {} held, {} failed, {per_conn:.1} KiB/conn, p99 lag {p99:.1} ms{}",
                kind.name(),
                held.held,
                held.failed,
                held.first_error
                    .as_deref()
                    .map(|e| format!(" (first error: {e})"))
                    .unwrap_or_default()
            );
            let label = format!("{} ({n})", kind.name());
            series.push(Series {
                name: label.clone(),
                points: held
                    .curve
                    .iter()
                    .map(|&(open, kib)| (open as f64, kib as f64 / 1024.0))
                    .collect(),
            });
            // The targets: at the fixed count, all held with a small p99 lag and little memory
            // each; at the fd limit, all held (the lag is only reported). The figures are the
            // condition below.
            let at_fd_limit = n != self.plan.sse_conns;
            let ok = held.held == n && per_conn <= 10.0 && (at_fd_limit || p99 < 20.0);
            let target = if at_fd_limit {
                "all held, ≤ 10 KiB/conn (⇒ ≥ 100 k per GiB)"
            } else {
                "all held, p99 lag < 20 ms, ≤ 10 KiB/conn"
            };
            let per_gib = if per_conn > 0.0 {
                format!(", ⇒ {} per GiB", si(1024.0 * 1024.0 / per_conn))
            } else {
                String::new()
            };
            self.report.row(
                format!("SSE, {n} connections × 1 event per 5 s — {}", kind.name()),
                format!(
                    "{}/{n} held; lag p50 {:.2} ms, p99 {p99:.2} ms, max {:.1} ms ({} events); \
                     {per_conn:.1} KiB RSS/conn{per_gib}",
                    held.held,
                    median(&held.lag_ms),
                    percentile(&held.lag_ms, 100.0),
                    held.lag_ms.len()
                ),
                format!(
                    "RSS {:.1} → {:.1} MiB; opened in {:.1} s (lag p99 while opening {:.1} ms, \
                     {} listen overflows)",
                    held.rss_before_kib as f64 / 1024.0,
                    held.rss_held_kib as f64 / 1024.0,
                    held.ramp_secs,
                    percentile(&held.ramp_lag_ms, 99.0),
                    held.listen_overflows
                ),
                if kind == Kind::Chunkstream {
                    target
                } else {
                    "(baseline)"
                },
                if kind == Kind::Chunkstream {
                    Status::check(ok)
                } else {
                    Status::Info
                },
            );
            let mut lags = held.lag_ms.clone();
            lags.sort_by(f64::total_cmp);
            raw.insert(
                label,
                serde_json::json!({"wanted": n, "held": held.held, "failed": held.failed,
                    "rss_before_kib": held.rss_before_kib, "rss_held_kib": held.rss_held_kib,
                    "kib_per_conn": per_conn, "curve": held.curve,
                    "lag_ms_p50": median(&lags), "lag_ms_p99": p99,
                    "lag_ms_max": lags.last().copied().unwrap_or(0.0),
                    "ramp_secs": held.ramp_secs, "listen_overflows": held.listen_overflows,
                    "ramp_lag_ms_p99": percentile(&held.ramp_lag_ms, 99.0),
                    "first_error": held.first_error}),
            );
            drop(server);
            // Let the kernel reap the closed sockets before the next server.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.report.raw("sse_held", raw);
        if series.is_empty() {
            return Ok(());
        }
        plot::lines(
            &self.plan.results.join("rss-vs-sse-connections.svg"),
            "server RSS vs open SSE connections (1 event per 5 s each)",
            "open SSE connections",
            "server RSS, MiB",
            &series,
        )
    }
}

/// The shared instances of the three servers.
struct Servers {
    chunkstream: Server,
    floor: Server,
    axum: Server,
    /// The `--compare-bin` chunkstream ("before"), if any.
    compare: Option<Server>,
}

impl<'a> Servers {
    /// `servers` in the order given, then the compared binary if there is one (last, so
    /// that the indexes of the others stay put).
    fn in_order(&'a self, servers: &[&'a Server]) -> Vec<&'a Server> {
        servers
            .iter()
            .copied()
            .chain(self.compare.as_ref())
            .collect()
    }
}

/// Per-run ratios `a[i] / b[i]` (same run, so the machine's state is shared).
pub fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter(|(_, b)| **b > 0.0)
        .map(|(a, b)| a / b)
        .collect()
}

fn diff(before: Option<Duration>, after: Option<Duration>) -> Duration {
    match (before, after) {
        (Some(b), Some(a)) => a.saturating_sub(b),
        _ => Duration::ZERO,
    }
}

/// Streams `/stream?{query}` reading flat out for at most `cap`, sampling the server's RSS
/// every 50 ms. Returns `(seconds, KiB)` samples, lines read and seconds taken.
pub async fn stream_sampling_rss(
    server: &Server,
    query: &str,
    cap: Duration,
) -> anyhow::Result<(Vec<(f64, f64)>, u64, f64)> {
    let started = std::time::Instant::now();
    let mut conn = load::open(server.addr, Route::Text, query, false, 256 * 1024).await?;
    let mut lines = crate::client::LineCounter::default();
    let mut points = vec![(0.0, server.rss_kib().unwrap_or(0) as f64)];
    let deadline = started + cap;
    loop {
        let tick = (std::time::Instant::now() + Duration::from_millis(50)).min(deadline);
        let end = conn.read_body(&mut lines, Some(tick)).await?;
        points.push((
            started.elapsed().as_secs_f64(),
            server.rss_kib().unwrap_or(0) as f64,
        ));
        if end == crate::client::BodyEnd::Complete || std::time::Instant::now() >= deadline {
            break;
        }
    }
    Ok((points, lines.lines, started.elapsed().as_secs_f64()))
}

/// What a reader that stalls mid-stream and then leaves cost the server.
#[derive(Debug, serde::Serialize)]
pub struct StalledReader {
    /// Server CPU in the 2 s before the request, % of one core.
    pub cpu_idle_pct: f64,
    /// Server RSS before the request, KiB.
    pub idle_kib: u64,
    /// Server RSS once the reader had read about 1 MiB, KiB.
    pub reading_kib: u64,
    /// Highest server RSS while the reader stalled, KiB.
    pub peak_kib: u64,
    /// Server RSS after the reader left, KiB.
    pub after_kib: u64,
    /// Server CPU while the reader stalled (after the first second), % of one core.
    pub cpu_stalled_pct: f64,
    /// Server CPU in the 2 s from 0.5 s after the reader left, % of one core.
    pub cpu_after_pct: f64,
}

impl StalledReader {
    /// RSS growth over idle, KiB.
    pub fn growth_kib(&self) -> u64 {
        self.peak_kib.saturating_sub(self.idle_kib)
    }
}

/// A client reads about 1 MiB of `/stream?count=10000000` on `server`, stops reading for
/// `stall`, then closes the connection: the server's RSS and CPU meanwhile and after.
pub async fn reader_stalls_then_leaves(
    server: &Server,
    stall: Duration,
) -> anyhow::Result<StalledReader> {
    // What the server spends with no client at all (timers, heartbeats), for comparison.
    let cpu_idle_start = server.cpu();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_idle = diff(cpu_idle_start, server.cpu());
    let idle_kib = server.rss_kib().unwrap_or(0);
    let mut conn = load::open(server.addr, Route::Text, "count=10000000", false, 64 * 1024).await?;
    // Read about 1 MiB, then stop.
    let mut lines = crate::client::LineCounter::default();
    while lines.lines < 50_000 {
        let deadline = Some(std::time::Instant::now() + Duration::from_millis(1));
        conn.read_body(&mut lines, deadline).await?;
    }
    let reading_kib = server.rss_kib().unwrap_or(0);
    // The first second fills the socket buffers; measure CPU after that.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_start = server.cpu();
    let mut peak_kib = reading_kib;
    let stall_rest = stall.saturating_sub(Duration::from_secs(1));
    let stalled = std::time::Instant::now();
    while stalled.elapsed() < stall_rest {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_kib = peak_kib.max(server.rss_kib().unwrap_or(0));
    }
    let cpu_stalled = diff(cpu_start, server.cpu());
    drop(conn);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu_after_start = server.cpu();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_after = diff(cpu_after_start, server.cpu());
    Ok(StalledReader {
        cpu_idle_pct: cpu_idle.as_secs_f64() / 2.0 * 100.0,
        idle_kib,
        reading_kib,
        peak_kib,
        after_kib: server.rss_kib().unwrap_or(0),
        cpu_stalled_pct: cpu_stalled.as_secs_f64() / stall_rest.as_secs_f64().max(1e-3) * 100.0,
        cpu_after_pct: cpu_after.as_secs_f64() / 2.0 * 100.0,
    })
}
