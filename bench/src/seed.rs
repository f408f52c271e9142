//! chunkstream beside the Flask original (`bench/flask_app.py` under gunicorn with gevent
//! workers) on `/stream`, same run: the seed article's three claims (memory efficiency,
//! lazy evaluation, scalability) as figures. Writes a one-line-per-claim summary (the
//! README's table), a table of every scenario, the raw numbers and two plots.

use std::{fmt::Write as _, fs, path::PathBuf, time::Duration};

use serde::Serialize;

use crate::{
    load::{self, Route},
    plot::{self, Series},
    procs::{Kind, Launcher, Server},
    report::{median, percentile, si},
    scenarios::{StalledReader, ratios, reader_stalls_then_leaves, stream_sampling_rss},
};

/// The scenario names `seed --only` accepts, in the order they run.
pub const NAMES: [&str; 5] = ["lines", "requests", "held", "memory", "leave"];

/// The length of the one-connection stream.
const LINES_COUNT: u64 = 10_000_000;
/// The pause between two chunks of a held stream.
const HELD_INTERVAL: Duration = Duration::from_secs(5);

/// How long and how hard to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Runs of the throughput scenarios (the median is reported).
    pub runs: usize,
    /// Length of each request-loop run.
    pub run_time: Duration,
    /// How long Flask's 10 M-line stream is read per run (whole, it is too slow to wait for).
    pub flask_window: Duration,
    /// Streams held at one chunk per 5 s.
    pub streams: usize,
    /// How long all of them are held.
    pub hold: Duration,
    /// Interval of the 1 k-chunk stream in the memory scenario.
    pub small_interval: Duration,
    /// Longest the 100 M-chunk stream is read in the memory scenario.
    pub big_cap: Duration,
    /// How long the leaving client stops reading before it goes.
    pub stall: Duration,
    /// Where the tables and plots go.
    pub results: PathBuf,
}

impl Plan {
    /// The full run (BENCHMARKS.md says how long it takes).
    pub fn full(results: PathBuf, fd_limit: u64) -> Self {
        let fd_limit = usize::try_from(fd_limit).unwrap_or(usize::MAX);
        Self {
            runs: 5,
            run_time: Duration::from_secs(3),
            flask_window: Duration::from_secs(5),
            // Client and server each have the whole limit; keep a margin for the rest.
            streams: if fd_limit > 4_000 {
                fd_limit - 1_000
            } else {
                fd_limit / 2
            },
            hold: Duration::from_secs(12),
            small_interval: Duration::from_millis(5),
            big_cap: Duration::from_secs(20),
            stall: Duration::from_secs(6),
            results,
        }
    }

    /// A quick look: fewer runs, shorter loads, fewer held streams.
    pub fn quick(results: PathBuf) -> Self {
        Self {
            runs: 3,
            run_time: Duration::from_secs(1),
            flask_window: Duration::from_secs(2),
            streams: 2_000,
            hold: Duration::from_secs(6),
            small_interval: Duration::from_millis(2),
            big_cap: Duration::from_secs(6),
            stall: Duration::from_secs(4),
            results,
        }
    }
}

/// A rate and the server CPU it cost.
#[derive(Debug, Clone, Serialize)]
struct Rate {
    /// Median over the runs.
    per_s: f64,
    /// Median server CPU per unit (ns per line, µs per request).
    cpu: f64,
    /// Every run's rate.
    runs: Vec<f64>,
}

/// What holding streams showed, summed up.
#[derive(Debug, Clone, Serialize)]
struct HeldSummary {
    wanted: usize,
    held: usize,
    failed: usize,
    kib_per_stream: f64,
    lag_ms_p50: f64,
    lag_ms_p99: f64,
    lag_ms_max: f64,
    lag_samples: usize,
    gap_lag_ms_p50: f64,
    gap_lag_ms_p99: f64,
    rss_before_kib: u64,
    rss_held_kib: u64,
    ramp_secs: f64,
    first_error: Option<String>,
    curve: Vec<(usize, u64)>,
}

/// RSS growth while streaming a small and a huge stream.
#[derive(Debug, Clone, Serialize)]
struct MemorySummary {
    /// Peak − idle with 1 k chunks, KiB.
    small_growth_kib: f64,
    /// Peak − idle with 100 M chunks, KiB.
    big_growth_kib: f64,
    /// Lines of the 100 M-chunk stream read before the cap.
    big_lines: u64,
    /// Seconds the 100 M-chunk stream was read.
    big_secs: f64,
    /// Idle and peak RSS of each stream's fresh server, KiB.
    idle_peak_kib: [(u64, f64); 2],
}

/// One slot per server: chunkstream, then Flask.
type Both<T> = [Option<T>; 2];

fn slot(kind: Kind) -> usize {
    usize::from(kind == Kind::Flask)
}

/// The seed comparison: runs the scenarios, keeps what they measured.
pub struct Seed {
    launcher: Launcher,
    /// Durations and sizes.
    pub plan: Plan,
    lines: Both<Rate>,
    lines_ratio: Option<f64>,
    requests: Both<Rate>,
    requests_ratio: Option<f64>,
    held: Both<HeldSummary>,
    memory: Both<MemorySummary>,
    leave: Both<StalledReader>,
    failures: Vec<String>,
}

impl Seed {
    /// A comparison with no measurement yet.
    pub fn new(launcher: Launcher, plan: Plan) -> Self {
        Self {
            launcher,
            plan,
            lines: [None, None],
            lines_ratio: None,
            requests: [None, None],
            requests_ratio: None,
            held: [None, None],
            memory: [None, None],
            leave: [None, None],
            failures: Vec::new(),
        }
    }

    /// The servers measured: chunkstream, and Flask unless Python was skipped.
    fn kinds(&self) -> Vec<Kind> {
        let mut kinds = vec![Kind::Chunkstream];
        if self.launcher.flask.is_some() {
            kinds.push(Kind::Flask);
        }
        kinds
    }

    /// Runs the scenarios named in `only` (all when empty), in the order of [`NAMES`].
    pub async fn run(&mut self, only: &[String]) -> anyhow::Result<()> {
        let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
        // The two throughput scenarios share one instance of each server, started now.
        let mut shared = Vec::new();
        if wanted("lines") || wanted("requests") {
            for kind in self.kinds() {
                shared.push(self.launcher.start(kind).await?);
            }
        }
        for name in NAMES {
            if !wanted(name) {
                continue;
            }
            println!("\n## {name}");
            let result = match name {
                "lines" => self.lines(&shared).await,
                "requests" => self.requests(&shared).await,
                "held" => self.held().await,
                "memory" => self.memory().await,
                _ => self.leave().await,
            };
            if let Err(e) = result {
                println!("  !! {name} failed: {e:#}");
                self.failures.push(format!("{name}: {e:#}"));
            }
        }
        Ok(())
    }

    /// `/stream?count=10000000` on one connection: chunkstream's whole stream, Flask's
    /// for `flask_window` (after a 0.5 s warm-up), run by run, interleaved.
    async fn lines(&mut self, servers: &[Server]) -> anyhow::Result<()> {
        let mut rates: [Vec<f64>; 2] = Default::default();
        let mut cpu: [Vec<f64>; 2] = Default::default();
        for run in 0..self.plan.runs {
            for server in servers {
                let i = slot(server.kind);
                if server.kind == Kind::Flask {
                    let window = load::flat_out(
                        server.addr,
                        Route::Text,
                        LINES_COUNT,
                        1,
                        self.plan.flask_window,
                        || server.cpu(),
                    )
                    .await?;
                    rates[i].push(window.rate);
                    cpu[i].extend(window.cpu_ns_per_chunk);
                    // Let the worker see the client go before the next run.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                } else {
                    let before = server.cpu();
                    rates[i].push(load::text_rate(server.addr, LINES_COUNT).await?);
                    if let (Some(b), Some(a)) = (before, server.cpu()) {
                        cpu[i].push((a - b).as_secs_f64() * 1e9 / LINES_COUNT as f64);
                    }
                }
                println!(
                    "  run {run}: {:<12} {:>8} lines/s",
                    server.kind.name(),
                    si(rates[i].last().copied().unwrap_or(0.0))
                );
            }
        }
        for i in 0..2 {
            if !rates[i].is_empty() {
                self.lines[i] = Some(Rate {
                    per_s: median(&rates[i]),
                    cpu: median(&cpu[i]),
                    runs: rates[i].clone(),
                });
            }
        }
        if !rates[1].is_empty() {
            self.lines_ratio = Some(median(&ratios(&rates[0], &rates[1])));
        }
        Ok(())
    }

    /// `/stream` with its defaults (10 lines), 64 keep-alive connections, req/s.
    async fn requests(&mut self, servers: &[Server]) -> anyhow::Result<()> {
        let mut rates: [Vec<f64>; 2] = Default::default();
        let mut cpu: [Vec<f64>; 2] = Default::default();
        for run in 0..self.plan.runs {
            for server in servers {
                let i = slot(server.kind);
                let before = server.cpu();
                let rate = load::request_loop(server.addr, 64, self.plan.run_time).await?;
                rates[i].push(rate);
                if let (Some(b), Some(a)) = (before, server.cpu()) {
                    let requests = rate * self.plan.run_time.as_secs_f64();
                    cpu[i].push((a - b).as_secs_f64() * 1e6 / requests.max(1.0));
                }
                println!(
                    "  run {run}: {:<12} {:>8} req/s",
                    server.kind.name(),
                    si(rate)
                );
            }
        }
        for i in 0..2 {
            if !rates[i].is_empty() {
                self.requests[i] = Some(Rate {
                    per_s: median(&rates[i]),
                    cpu: median(&cpu[i]),
                    runs: rates[i].clone(),
                });
            }
        }
        if !rates[1].is_empty() {
            self.requests_ratio = Some(median(&ratios(&rates[0], &rates[1])));
        }
        Ok(())
    }

    /// `plan.streams` streams of `/stream` at one chunk per 5 s, each server fresh.
    async fn held(&mut self) -> anyhow::Result<()> {
        let n = self.plan.streams;
        let mut series = Vec::new();
        for kind in self.kinds() {
            let server = self.launcher.start(kind).await?;
            let held = load::held(
                server.addr,
                Route::Text,
                n,
                HELD_INTERVAL,
                self.plan.hold,
                || server.rss_kib(),
            )
            .await?;
            drop(server);
            let mut lags = held.lag_ms.clone();
            lags.sort_by(f64::total_cmp);
            let summary = HeldSummary {
                wanted: n,
                held: held.held,
                failed: held.failed,
                kib_per_stream: held.rss_held_kib.saturating_sub(held.rss_before_kib) as f64
                    / held.held.max(1) as f64,
                lag_ms_p50: median(&lags),
                lag_ms_p99: percentile(&lags, 99.0),
                lag_ms_max: lags.last().copied().unwrap_or(0.0),
                lag_samples: lags.len(),
                gap_lag_ms_p50: median(&held.gap_lag_ms),
                gap_lag_ms_p99: percentile(&held.gap_lag_ms, 99.0),
                rss_before_kib: held.rss_before_kib,
                rss_held_kib: held.rss_held_kib,
                ramp_secs: held.ramp_secs,
                first_error: held.first_error.clone(),
                curve: held.curve.clone(),
            };
            println!(
                "  {}: {}/{n} held, {} failed, {:.1} KiB/stream, p99 lag {:.1} ms{}",
                kind.name(),
                summary.held,
                summary.failed,
                summary.kib_per_stream,
                summary.lag_ms_p99,
                summary
                    .first_error
                    .as_deref()
                    .map(|e| format!(" (first error: {e})"))
                    .unwrap_or_default()
            );
            series.push(Series {
                name: label(kind),
                points: held
                    .curve
                    .iter()
                    .map(|&(open, kib)| (open as f64, kib as f64 / 1024.0))
                    .collect(),
            });
            self.held[slot(kind)] = Some(summary);
            // Let the kernel reap the closed sockets before the next server.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        plot::lines(
            &self.plan.results.join("rss-vs-streams-held.svg"),
            "server RSS vs /stream streams held (1 chunk per 5 s each)",
            "streams held",
            "server RSS (whole process tree), MiB",
            &series,
        )
    }

    /// RSS growth while streaming 1 k chunks (paced) vs 100 M (flat out), fresh servers.
    async fn memory(&mut self) -> anyhow::Result<()> {
        let small_ms = self.plan.small_interval.as_millis();
        let mut series = Vec::new();
        for kind in self.kinds() {
            let mut runs = Vec::new();
            for (what, query, cap) in [
                (
                    format!("1 k chunks, {small_ms} ms apart"),
                    format!("count=1000&interval_ms={small_ms}"),
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
                    "  {} {what}: idle {idle} KiB, peak {peak:.0} KiB, {lines} lines in {secs:.1} s",
                    kind.name()
                );
                series.push(Series {
                    name: format!("{}: {what}", kind.name()),
                    points: points
                        .iter()
                        .map(|&(t, kib)| (t, (kib - idle as f64) / 1024.0))
                        .collect(),
                });
                runs.push((idle, peak, lines, secs));
            }
            self.memory[slot(kind)] = Some(MemorySummary {
                small_growth_kib: runs[0].1 - runs[0].0 as f64,
                big_growth_kib: runs[1].1 - runs[1].0 as f64,
                big_lines: runs[1].2,
                big_secs: runs[1].3,
                idle_peak_kib: [(runs[0].0, runs[0].1), (runs[1].0, runs[1].1)],
            });
        }
        plot::lines(
            &self.plan.results.join("rss-growth-vs-stream-size.svg"),
            "RSS growth over idle while streaming: 1 k vs 100 M chunks",
            "seconds since the request",
            "server RSS − idle RSS, MiB",
            &series,
        )
    }

    /// A client reads part of a 10 M-line stream, stalls, then leaves: server CPU.
    async fn leave(&mut self) -> anyhow::Result<()> {
        for kind in self.kinds() {
            let server = self.launcher.start(kind).await?;
            let r = reader_stalls_then_leaves(&server, self.plan.stall).await?;
            println!(
                "  {}: CPU {:.1}% while stalled, {:.1}% after the client left; RSS +{} KiB",
                kind.name(),
                r.cpu_stalled_pct,
                r.cpu_after_pct,
                r.growth_kib()
            );
            self.leave[slot(kind)] = Some(r);
        }
        Ok(())
    }

    /// The cell for server `i` of `both`, or why there is none.
    fn cell<T>(&self, both: &Both<T>, i: usize, show: impl Fn(&T) -> String) -> String {
        match &both[i] {
            Some(v) => show(v),
            None if i == 1 && self.launcher.flask.is_none() => {
                "not measured (--skip-python)".into()
            }
            None => "not run".into(),
        }
    }

    /// The summary (one line per claim of the article) and the table of every scenario,
    /// as Markdown.
    pub fn tables(&self) -> String {
        let flask_window = self.plan.flask_window.as_secs();
        let mut out = String::from(
            "### The article's claims, measured on `/stream`\n\n\
             | the article's claim | measured | Flask (gunicorn + gevent) | chunkstream |\n\
             |---|---|---|---|\n",
        );
        let memory = |m: &MemorySummary| {
            format!(
                "{:+.0} KiB after {} lines; {:+.0} KiB after 1 k",
                m.big_growth_kib,
                si(m.big_lines as f64),
                m.small_growth_kib
            )
        };
        let _ = writeln!(
            out,
            "| Memory efficiency: memory does not grow with the stream | RSS growth while streaming a 100 M-chunk stream vs a 1 k one | {} | {} |",
            self.cell(&self.memory, 1, memory),
            self.cell(&self.memory, 0, memory),
        );
        let perf = |i: usize| {
            if i == 1 && self.launcher.flask.is_none() {
                return "not measured (--skip-python)".to_owned();
            }
            format!(
                "{}; {}; {}",
                self.cell(&self.lines, i, |r| format!("{} lines/s", si(r.per_s))),
                self.cell(&self.requests, i, |r| format!("{} req/s", si(r.per_s))),
                self.cell(&self.leave, i, |r| format!(
                    "{:.1}% CPU after a client left",
                    r.cpu_after_pct
                )),
            )
        };
        let _ = writeln!(
            out,
            "| Improved performance: lazy evaluation, work only on demand | one connection's lines/s; requests/s (defaults, 64 connections); server CPU once a client has left mid-stream | {} | {} |",
            perf(1),
            perf(0),
        );
        let scale = |h: &HeldSummary| {
            format!(
                "{}/{} held; {:.1} KiB each; p99 lag {:.1} ms ({:.1} ms per chunk)",
                h.held, h.wanted, h.kib_per_stream, h.lag_ms_p99, h.gap_lag_ms_p99
            )
        };
        let _ = writeln!(
            out,
            "| Scalability: many clients at once | streams held at once, 1 chunk per 5 s; RSS per stream; p99 lag | {} | {} |",
            self.cell(&self.held, 1, scale),
            self.cell(&self.held, 0, scale),
        );

        out.push_str(
            "\n### Every scenario\n\n\
             | scenario (`/stream`) | chunkstream | Flask (gunicorn + gevent) | same-run comparison |\n\
             |---|---|---|---|\n",
        );
        let rate = |unit: &'static str, cpu_unit: &'static str| {
            move |r: &Rate| {
                let digits = if r.cpu < 100.0 { 1 } else { 0 };
                format!(
                    "{} {unit} ({:.digits$} {cpu_unit} CPU each)",
                    si(r.per_s),
                    r.cpu
                )
            }
        };
        let _ = writeln!(
            out,
            "| `count=10000000`, 1 connection: lines/s (chunkstream: the whole stream; Flask: {flask_window} s of it, after 0.5 s) | {} | {} | {} |",
            self.cell(&self.lines, 0, rate("lines/s", "ns")),
            self.cell(&self.lines, 1, rate("lines/s", "ns")),
            compare(self.lines_ratio, &self.lines, "line", 0),
        );
        let _ = writeln!(
            out,
            "| defaults (10 lines), 64 keep-alive connections: requests/s | {} | {} | {} |",
            self.cell(&self.requests, 0, rate("req/s", "µs")),
            self.cell(&self.requests, 1, rate("req/s", "µs")),
            compare(self.requests_ratio, &self.requests, "request", 1),
        );
        let held = |h: &HeldSummary| {
            format!(
                "{}/{} held, {} failed; {:.1} KiB RSS per stream (RSS {:.1} → {:.1} MiB); \
                 lag behind schedule p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} chunks); \
                 behind the previous chunk + 5 s: p50 {:.1} ms, p99 {:.1} ms; opened in {:.1} s",
                h.held,
                h.wanted,
                h.failed,
                h.kib_per_stream,
                h.rss_before_kib as f64 / 1024.0,
                h.rss_held_kib as f64 / 1024.0,
                h.lag_ms_p50,
                h.lag_ms_p99,
                h.lag_ms_max,
                h.lag_samples,
                h.gap_lag_ms_p50,
                h.gap_lag_ms_p99,
                h.ramp_secs
            )
        };
        let held_cmp = match (&self.held[0], &self.held[1]) {
            (Some(c), Some(f)) if c.kib_per_stream > 0.0 => format!(
                "Flask uses {:.1}× the RSS per stream",
                f.kib_per_stream / c.kib_per_stream
            ),
            _ => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {} streams held, 1 chunk per 5 s, for {} s | {} | {} | {held_cmp} |",
            self.plan.streams,
            self.plan.hold.as_secs(),
            self.cell(&self.held, 0, held),
            self.cell(&self.held, 1, held),
        );
        let mem = |m: &MemorySummary| {
            format!(
                "RSS over idle: {:+.0} KiB with 1 k chunks, {:+.0} KiB with 100 M ({} lines read in {:.1} s)",
                m.small_growth_kib,
                m.big_growth_kib,
                si(m.big_lines as f64),
                m.big_secs
            )
        };
        let _ = writeln!(
            out,
            "| RSS while streaming 1 k chunks ({} ms apart) vs 100 M (flat out, read for at most {} s), fresh servers | {} | {} | 100 M − 1 k: {} |",
            self.plan.small_interval.as_millis(),
            self.plan.big_cap.as_secs(),
            self.cell(&self.memory, 0, mem),
            self.cell(&self.memory, 1, mem),
            self.kinds()
                .iter()
                .map(|&k| self.cell(&self.memory, slot(k), |m| format!(
                    "{} {:+.0} KiB",
                    k.name(),
                    m.big_growth_kib - m.small_growth_kib
                )))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let leave = |r: &StalledReader| {
            format!(
                "CPU {:.1}% with no client, {:.1}% while the client stalls, {:.1}% after it \
                 left; RSS {:+} KiB over idle",
                r.cpu_idle_pct,
                r.cpu_stalled_pct,
                r.cpu_after_pct,
                r.growth_kib()
            )
        };
        let _ = writeln!(
            out,
            "| a client reads ~1 MiB of a 10 M-line stream, stops reading for {} s, leaves | {} | {} | — |",
            self.plan.stall.as_secs(),
            self.cell(&self.leave, 0, leave),
            self.cell(&self.leave, 1, leave),
        );
        for failure in &self.failures {
            let _ = writeln!(out, "\n**failed**: {failure}");
        }
        out
    }

    /// Writes `results.md` (header + tables) and `results.json` (every figure, every run).
    pub fn write(&self, header: &str, tables: &str) -> anyhow::Result<()> {
        fs::create_dir_all(&self.plan.results)?;
        fs::write(
            self.plan.results.join("results.md"),
            format!("{header}\n{tables}"),
        )?;
        let raw = serde_json::json!({
            "lines_per_s": {"chunkstream": self.lines[0], "flask": self.lines[1]},
            "lines_ratio_chunkstream_over_flask": self.lines_ratio,
            "requests_per_s": {"chunkstream": self.requests[0], "flask": self.requests[1]},
            "requests_ratio_chunkstream_over_flask": self.requests_ratio,
            "held": {"chunkstream": self.held[0], "flask": self.held[1]},
            "memory": {"chunkstream": self.memory[0], "flask": self.memory[1]},
            "leave": {"chunkstream": self.leave[0], "flask": self.leave[1]},
            "failures": self.failures,
        });
        fs::write(
            self.plan.results.join("results.json"),
            serde_json::to_string_pretty(&raw)? + "\n",
        )?;
        Ok(())
    }
}

/// The same-run comparison of a rate: the median per-run ratio, and the CPU per unit.
fn compare(ratio: Option<f64>, rates: &Both<Rate>, unit: &str, digits: usize) -> String {
    let Some(ratio) = ratio else {
        return "—".into();
    };
    let cpu = match rates {
        [Some(c), Some(f)] if c.cpu > 0.0 => format!(
            "; Flask's CPU per {unit} {:.digits$}× chunkstream's",
            f.cpu / c.cpu
        ),
        _ => String::new(),
    };
    format!("chunkstream {ratio:.digits$}× Flask{cpu}")
}

/// The plots' name for a server.
fn label(kind: Kind) -> String {
    match kind {
        Kind::Flask => "Flask (gunicorn + gevent, 1 worker per core)".to_owned(),
        other => other.name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(flask: bool) -> Seed {
        let launcher = Launcher {
            chunkstream_bin: PathBuf::new(),
            compare_bin: None,
            chunkstream_log: String::new(),
            chunkstream_env: Vec::new(),
            external: None,
            log_dir: PathBuf::new(),
            flask: flask.then(|| crate::flask::Gunicorn {
                venv: crate::venv::Venv {
                    dir: PathBuf::new(),
                    python_version: String::new(),
                },
                app_dir: PathBuf::new(),
                workers: 2,
                worker_connections: 1_000,
            }),
            python_ws: None,
        };
        Seed::new(launcher, Plan::quick(PathBuf::new()))
    }

    #[test]
    fn without_python_the_flask_column_says_why_it_is_empty() {
        let mut s = seed(false);
        s.lines[0] = Some(Rate {
            per_s: 5e7,
            cpu: 12.0,
            runs: vec![5e7],
        });
        let tables = s.tables();
        assert!(
            tables.contains("50.00 M lines/s (12.0 ns CPU each)"),
            "{tables}"
        );
        assert!(tables.contains("not measured (--skip-python)"), "{tables}");
        assert!(
            !tables.contains("(--skip-python); not measured"),
            "one reason per cell: {tables}"
        );
        assert!(!tables.contains("failed"), "{tables}");
    }

    #[test]
    fn the_summary_has_one_line_per_claim_and_compares_memory_per_stream() {
        let mut s = seed(true);
        let held = |kib: f64| HeldSummary {
            wanted: 10,
            held: 10,
            failed: 0,
            kib_per_stream: kib,
            lag_ms_p50: 0.0,
            lag_ms_p99: 1.0,
            lag_ms_max: 1.0,
            lag_samples: 10,
            gap_lag_ms_p50: 0.0,
            gap_lag_ms_p99: 1.0,
            rss_before_kib: 0,
            rss_held_kib: 0,
            ramp_secs: 0.1,
            first_error: None,
            curve: Vec::new(),
        };
        s.held = [Some(held(10.0)), Some(held(18.0))];
        let tables = s.tables();
        let claims = tables
            .lines()
            .filter(|l| {
                ["| Memory", "| Improved", "| Scalability"]
                    .iter()
                    .any(|c| l.starts_with(c))
            })
            .count();
        assert_eq!(claims, 3, "{tables}");
        assert!(
            tables.contains("Flask uses 1.8× the RSS per stream"),
            "{tables}"
        );
        assert!(tables.contains("| not run |"), "{tables}");
    }
}
