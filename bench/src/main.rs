//! `chunkstream-bench`: measures chunkstream against an idiomatic axum server and a bare
//! hyper floor, on every scenario of issue 7's targets table, and against the seed
//! article's Flask app on `/stream`; writes the tables and SVG plots into `bench/results/`.
//!
//! Layout:
//! - `baseline/`: the servers to compare with (`serve-axum`, `serve-floor` subcommands).
//! - `flask`: the Flask original's Python environment and gunicorn command line
//!   (the app itself is `bench/flask_app.py`); `pyws`: python `websockets` holding streams
//!   (`bench/ws_held.py`), a peer in the compression scenario; `venv`: their environments.
//! - `client`: raw HTTP/1.1 connections, a chunked decoder and chunk counters; `wt`: the
//!   WebTransport client (wtransport's, one UDP endpoint for many sessions).
//! - `load`: the loads (flat out, request loop, held streams, first chunk, drift).
//! - `procs`: servers as child processes; RSS and CPU time of their process trees.
//! - `scenarios`: the targets table, run by run; `compression`: its compression scenario;
//!   `webtransport`: WebTransport beside WebSocket; `seed`: chunkstream beside Flask;
//!   `report` and `plot`: the output.
//!
//! `cargo run --release -p chunkstream-bench -- all` builds the server and runs everything;
//! `… -- seed` measures it beside the Flask original.

#![forbid(unsafe_op_in_unsafe_fn)]

mod baseline;
mod client;
mod compression;
mod flask;
mod load;
mod plot;
mod procs;
mod pyws;
mod report;
mod scenarios;
mod seed;
mod venv;
mod webtransport;
mod wt;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

/// Benchmarks chunkstream against an idiomatic axum server, a bare hyper floor and the
/// seed's Flask original.
#[derive(Debug, Parser)]
#[command(name = "chunkstream-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the scenarios (all of them, or those named by `--only`) and write the results.
    All(AllArgs),
    /// chunkstream beside the seed article's Flask app (gunicorn + gevent) on `/stream`:
    /// the article's three claims measured; writes `bench/results/seed/`.
    Seed(SeedArgs),
    /// Serve the idiomatic axum baseline (started by `all`; handy by hand too).
    ServeAxum {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3001")]
        addr: SocketAddr,
        /// Add tower-http's `CompressionLayer` (gzip) on every route, the idiomatic way.
        #[arg(long)]
        gzip: bool,
    },
    /// Serve the bare hyper floor (`/stream` only).
    ServeFloor {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3002")]
        addr: SocketAddr,
    },
}

/// What `all` takes.
#[derive(Debug, Args)]
struct AllArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Only these scenarios (comma-separated): text-10m, jsonl-10m, text-defaults, sse-flat,
    /// ws-flat, first-chunk, drift, memory, slow-reader, stalled, sse-held, compression,
    /// webtransport.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// A second chunkstream binary (e.g. the release before a change) measured beside the
    /// first: interleaved in every throughput scenario, and in memory and sse-held (not in
    /// slow-reader, stalled or compression): "before" to the first's "after", with same-run
    /// ratios after / before.
    #[arg(long)]
    compare_bin: Option<PathBuf>,
    /// What to call the `--compare-bin` binary in the results (default: its file name).
    #[arg(long, requires = "compare_bin")]
    compare_label: Option<String>,
    /// The Python interpreter that makes the venv of the python `websockets` peer in the
    /// compression scenario (3.9 or newer).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Skip the python `websockets` peer of the compression scenario.
    #[arg(long)]
    skip_python: bool,
    /// SSE streams to hold in the 1-event-per-5-s scenario (default 10 000; 2 000 quick).
    #[arg(long)]
    sse_conns: Option<usize>,
    /// Skip holding as many SSE streams as the fd limit allows.
    #[arg(long)]
    no_sse_max: bool,
    /// Where the table and plots go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    results: PathBuf,
}

/// What `seed` takes.
#[derive(Debug, Args)]
struct SeedArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Only these scenarios (comma-separated): lines, requests, held, memory, leave.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Measure chunkstream alone: no Python environment, no Flask.
    #[arg(long)]
    skip_python: bool,
    /// The Python interpreter that makes the Flask original's venv (3.9 or newer).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Streams to hold at one chunk per 5 s (default: the fd limit less 1 000, the
    /// margin for the rest; 2 000 with --quick).
    #[arg(long)]
    streams: Option<usize>,
    /// Where the tables and plots go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results/seed"))]
    results: PathBuf,
}

/// The options every run takes.
#[derive(Debug, Args)]
struct RunArgs {
    /// A quick look: fewer runs, shorter loads, 2 000 held streams.
    #[arg(long)]
    quick: bool,
    /// The chunkstream binary; by default the one next to this binary, built first with
    /// `cargo build --release --bin chunkstream` into the same target directory.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Measure an already running chunkstream at this URL (e.g. `http://127.0.0.1:3000`)
    /// instead of starting one; memory scenarios need `--pid` and start nothing fresh.
    #[arg(long)]
    url: Option<String>,
    /// The pid of the server at `--url`, for RSS and CPU readings.
    #[arg(long, requires = "url")]
    pid: Option<u32>,
    /// Runs per throughput scenario.
    #[arg(long)]
    runs: Option<usize>,
    /// `RUST_LOG` for the chunkstream server (its default logs one line per stream).
    #[arg(long, default_value = "info")]
    server_log: String,
    /// What to call the server's version in the results when `--server-bin` or `--url`
    /// is not built from this working tree (e.g. `7fd4ea5, clean`).
    #[arg(long)]
    server_commit: Option<String>,
    /// Extra environment for the chunkstream server, `KEY=VALUE` (repeatable), for
    /// experiments such as `MALLOC_ARENA_MAX=2` or an `LD_PRELOAD`ed allocator.
    #[arg(long = "server-env", value_parser = parse_env)]
    server_env: Vec<(String, String)>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::ServeAxum { addr, gzip } => runtime.block_on(baseline::axum_app::serve(addr, gzip)),
        Cmd::ServeFloor { addr } => runtime.block_on(baseline::floor::serve(addr)),
        Cmd::All(args) => runtime.block_on(run_all(args)),
        Cmd::Seed(args) => runtime.block_on(run_seed(args)),
    }
}

/// What every run sets up first.
struct Setup {
    repo: PathBuf,
    fd_limit: u64,
    launcher: procs::Launcher,
}

/// Raises the fd limit, finds (or builds) the server, prepares the launcher.
fn setup(args: &RunArgs) -> anyhow::Result<Setup> {
    let fd_limit = procs::raise_fd_limit();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the bench crate sits inside the repository")?
        .to_path_buf();
    let external = match &args.url {
        Some(url) => Some((parse_url(url)?, args.pid)),
        None => None,
    };
    let chunkstream_bin = match (&args.server_bin, &external) {
        (Some(bin), _) => bin.clone(),
        (None, Some(_)) => PathBuf::new(),
        (None, None) => build_server(&repo)?,
    };
    let launcher = procs::Launcher {
        chunkstream_bin,
        compare_bin: None,
        python_ws: None,
        chunkstream_log: args.server_log.clone(),
        chunkstream_env: args.server_env.clone(),
        external,
        // One folder per run, so that two runs at once (or fresh servers) keep their logs.
        log_dir: std::env::temp_dir()
            .join("chunkstream-bench-logs")
            .join(std::process::id().to_string()),
        flask: None,
    };
    Ok(Setup {
        repo,
        fd_limit,
        launcher,
    })
}

/// Checks `--only` against the known scenario names.
fn check_only(only: &[String], known: &[&str]) -> anyhow::Result<()> {
    for name in only {
        if !known.contains(&name.as_str()) {
            bail!("unknown scenario `{name}`; known: {}", known.join(", "));
        }
    }
    Ok(())
}

async fn run_seed(args: SeedArgs) -> anyhow::Result<()> {
    check_only(&args.only, &seed::NAMES)?;
    let Setup {
        repo,
        fd_limit,
        mut launcher,
    } = setup(&args.run)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if args.skip_python {
        println!("--skip-python: measuring chunkstream alone");
    } else {
        let venv = flask::venv(&target_dir()?.join("flask-venv"), &args.python)?;
        launcher.flask = Some(flask::Gunicorn {
            venv,
            app_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            workers: cores,
            worker_connections: fd_limit,
        });
    }
    let mut plan = if args.run.quick {
        seed::Plan::quick(args.results.clone())
    } else {
        seed::Plan::full(args.results.clone(), fd_limit)
    };
    if let Some(runs) = args.run.runs {
        plan.runs = runs.max(1);
    }
    if let Some(n) = args.streams {
        plan.streams = n;
    }
    std::fs::create_dir_all(&plan.results)?;
    let mut header = header(&repo, &args.run, fd_limit);
    header.push_str(&match &launcher.flask {
        Some(g) => format!(
            "- Flask original: `bench/flask_app.py`, {}, packages {}; \
             `gunicorn {}` (one gevent worker per core; access log off, gunicorn's default)\n",
            g.venv.python_version,
            flask::pinned()
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", "),
            g.args("ADDR")
                .iter()
                .map(|a| a.replace(&*repo.to_string_lossy(), "."))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        None => "- Flask original: not measured (--skip-python)\n".to_owned(),
    });
    println!("{header}");
    let mut bench = seed::Seed::new(launcher, plan);
    let started = std::time::Instant::now();
    bench.run(&args.only).await?;
    let header = format!(
        "{header}- suite took {:.0} s\n",
        started.elapsed().as_secs_f64()
    );
    let tables = bench.tables();
    println!("\n{header}\n{tables}");
    bench.write(&header, &tables)?;
    println!("results and plots in {}", bench.plan.results.display());
    Ok(())
}

async fn run_all(args: AllArgs) -> anyhow::Result<()> {
    check_only(&args.only, &scenarios::NAMES)?;
    let Setup {
        repo,
        fd_limit,
        mut launcher,
    } = setup(&args.run)?;
    launcher.compare_bin = args.compare_bin.clone();
    let mut plan = if args.run.quick {
        scenarios::Plan::quick(args.results.clone())
    } else {
        scenarios::Plan::full(args.results.clone(), fd_limit)
    };
    if let Some(runs) = args.run.runs {
        plan.runs = runs.max(1);
    }
    if let Some(n) = args.sse_conns {
        plan.sse_conns = n;
    }
    if args.no_sse_max {
        plan.sse_max = None;
    }
    plan.compare_label = args.compare_bin.as_ref().map(|bin| {
        args.compare_label.clone().unwrap_or_else(|| {
            bin.file_name()
                .map_or_else(|| bin.display().to_string(), |n| n.to_string_lossy().into())
        })
    });
    let compression = args.only.is_empty() || args.only.iter().any(|o| o == "compression");
    if compression && !args.skip_python {
        launcher.python_ws = Some(pyws::PyWs::ensure(
            &target_dir()?.join("websockets-venv"),
            &args.python,
        )?);
    }
    std::fs::create_dir_all(&plan.results)?;

    let mut header = header(&repo, &args.run, fd_limit);
    if let (Some(bin), Some(label)) = (&args.compare_bin, &plan.compare_label) {
        header.push_str(&format!(
            "- before: `{label}` = {} (--compare-bin), measured beside the server in the \
             throughput scenarios, memory and sse-held; ratios are after / before\n",
            bin.display()
        ));
    }
    println!("{header}");
    let mut bench = scenarios::Bench {
        launcher,
        plan,
        report: report::Report::default(),
    };
    let started = std::time::Instant::now();
    bench.run(&args.only).await?;
    let header = format!(
        "{header}- suite took {:.0} s\n",
        started.elapsed().as_secs_f64()
    );
    println!("\n{header}\n{}", bench.report.table());
    bench.report.write(&bench.plan.results, &header)?;
    println!("results and plots in {}", bench.plan.results.display());
    Ok(())
}

/// This binary's target directory (it sits in `<target>/<profile>/`).
fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().context("this binary has a directory")?;
    Ok(profile_dir
        .parent()
        .context("this binary sits in <target>/<profile>/")?
        .to_path_buf())
}

/// Builds the server into this binary's target directory; returns the binary's path.
fn build_server(repo: &Path) -> anyhow::Result<PathBuf> {
    let target_dir = target_dir()?;
    let target_dir = target_dir.as_path();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!(
        "building chunkstream (release) into {}",
        target_dir.display()
    );
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--bin",
            "chunkstream",
            "--manifest-path",
        ])
        .arg(repo.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .context("cannot run cargo to build chunkstream")?;
    if !status.success() {
        bail!("building chunkstream failed; pass --server-bin to use a built one");
    }
    Ok(target_dir.join("release").join("chunkstream"))
}

/// `KEY=VALUE` → the pair.
fn parse_env(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{raw}` is not KEY=VALUE"))
}

/// `http://host:port[/]` → the socket address.
fn parse_url(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .context("--url must start with http://")?;
    let host_port = rest.trim_end_matches('/');
    host_port
        .parse()
        .with_context(|| format!("--url needs an IP address and a port, got `{host_port}`"))
}

/// Where and what was measured: commit, machine, load, mode.
fn header(repo: &Path, args: &RunArgs, fd_limit: u64) -> String {
    let git = |a: &[&str]| {
        Command::new("git")
            .args(a)
            .current_dir(repo)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_owned())
            .unwrap_or_default()
    };
    let commit = git(&["rev-parse", "--short=10", "HEAD"]);
    let dirty = git(&["status", "--porcelain", "--", "src", "Cargo.toml"]);
    let server = match &args.server_commit {
        Some(label) => format!("`{label}` (as given by --server-commit)"),
        None => format!("commit `{commit}`"),
    };
    let dirty = if args.server_commit.is_some() {
        String::new()
    } else {
        dirty
    };
    let dirty = if dirty.is_empty() {
        String::new()
    } else {
        format!(
            " **plus uncommitted changes** in: {}",
            dirty
                .lines()
                .map(|l| l.get(3..).unwrap_or(l))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "# chunkstream-bench results\n\n\
         - server: chunkstream at {server}{dirty}\n\
         - tool: chunkstream-bench at commit `{commit}`\n\
         - mode: {}; run at {date}; {cores} cores; load average at start {}; fd limit {fd_limit}\n\
         - server log level: `{}`{}\n",
        if args.quick { "--quick" } else { "full" },
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        args.server_log,
        args.server_env
            .iter()
            .map(|(k, v)| format!("; server env `{k}={v}`"))
            .collect::<String>(),
    )
}
