//! The servers under test as child processes, and what `/proc` says about them: resident
//! memory (`VmRSS`) and CPU time (`utime + stime`), summed over the server's process tree
//! (the Flask original is a gunicorn master and its workers).

use std::{
    collections::HashMap,
    fs,
    net::{SocketAddr, TcpListener},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// Which server a child process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// chunkstream itself.
    Chunkstream,
    /// A second chunkstream binary measured beside the first (`--compare-bin`): "before".
    Compare,
    /// The idiomatic axum baseline.
    Axum,
    /// The same axum app with tower-http's `CompressionLayer` (gzip) on every route.
    AxumGzip,
    /// The bare hyper floor.
    Floor,
    /// The seed article's Flask app under gunicorn with gevent workers.
    Flask,
    /// python `websockets` holding streams with its default permessage-deflate.
    PyWs,
    /// The same, with compression declined.
    PyWsPlain,
}

impl Kind {
    /// The name used in tables and plots.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chunkstream => "chunkstream",
            Kind::Compare => "chunkstream (before)",
            Kind::Axum => "axum",
            Kind::AxumGzip => "axum + CompressionLayer",
            Kind::Floor => "hyper floor",
            Kind::Flask => "Flask",
            Kind::PyWs => "python websockets",
            Kind::PyWsPlain => "python websockets, no compression",
        }
    }
}

/// Limits of chunkstream's that the bench's own load would trip over, lifted for every
/// chunkstream it starts, as environment variables (`CHUNKSTREAM_*` twins of the flags):
/// a variable the binary does not know is ignored, so one list fits older and newer builds.
/// The bench opens up to the fd limit's worth of streams from one client address.
pub const CHUNKSTREAM_LIFTED_LIMITS: &[(&str, &str)] = &[
    ("CHUNKSTREAM_MAX_STREAMS", "1000000"),
    // The per-client cap (0: none).
    ("CHUNKSTREAM_MAX_STREAMS_PER_CLIENT", "0"),
];

/// How to start the servers.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The chunkstream binary.
    pub chunkstream_bin: PathBuf,
    /// A second chunkstream binary to measure beside it, as "before", if any.
    pub compare_bin: Option<PathBuf>,
    /// `RUST_LOG` for chunkstream (its default, `info`, logs one line per stream).
    pub chunkstream_log: String,
    /// Extra environment for chunkstream.
    pub chunkstream_env: Vec<(String, String)>,
    /// An already running chunkstream to measure instead of starting one (no `/proc` data
    /// unless its pid is given).
    pub external: Option<(SocketAddr, Option<u32>)>,
    /// Where server output goes.
    pub log_dir: PathBuf,
    /// How to serve the Flask original, when it is measured.
    pub flask: Option<crate::flask::Gunicorn>,
    /// How to serve python `websockets`, when it is measured.
    pub python_ws: Option<crate::pyws::PyWs>,
}

/// A running server under test; killed when dropped.
pub struct Server {
    /// Which server.
    pub kind: Kind,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process id, when known.
    pub pid: Option<u32>,
    child: Option<Child>,
}

impl Launcher {
    /// Starts a fresh `kind` server on a free loopback port and waits until it accepts.
    pub async fn start(&self, kind: Kind) -> anyhow::Result<Server> {
        if let (Kind::Chunkstream, Some((addr, pid))) = (kind, self.external) {
            return Ok(Server {
                kind,
                addr,
                pid,
                child: None,
            });
        }
        let addr = free_port()?;
        fs::create_dir_all(&self.log_dir)?;
        let log_path = self.log_dir.join(format!(
            "{}-{}.log",
            kind.name().replace(' ', "-"),
            addr.port()
        ));
        let log = fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = match kind {
            Kind::Chunkstream | Kind::Compare => {
                let bin = match kind {
                    Kind::Compare => self
                        .compare_bin
                        .as_ref()
                        .context("no binary to compare with (--compare-bin)")?,
                    _ => &self.chunkstream_bin,
                };
                let mut c = Command::new(bin);
                c.arg("--addr")
                    .arg(addr.to_string())
                    .envs(CHUNKSTREAM_LIFTED_LIMITS.iter().copied())
                    .env("RUST_LOG", &self.chunkstream_log)
                    .envs(self.chunkstream_env.iter().map(|(k, v)| (k, v)));
                c
            }
            Kind::Flask => {
                let gunicorn = self
                    .flask
                    .as_ref()
                    .context("the Flask original is not set up (--skip-python?)")?;
                let mut c = gunicorn.command(addr);
                // Its own process group, so that the master and its workers die together.
                c.process_group(0);
                c
            }
            Kind::PyWs | Kind::PyWsPlain => self
                .python_ws
                .as_ref()
                .context("python websockets is not set up (--skip-python?)")?
                .command(addr, kind == Kind::PyWs),
            Kind::Axum | Kind::AxumGzip | Kind::Floor => {
                let mut c = Command::new(std::env::current_exe()?);
                c.arg(if kind == Kind::Floor {
                    "serve-floor"
                } else {
                    "serve-axum"
                })
                .arg("--addr")
                .arg(addr.to_string());
                if kind == Kind::AxumGzip {
                    c.arg("--gzip");
                }
                c
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command.spawn().with_context(|| {
            format!(
                "cannot start {} ({})",
                kind.name(),
                command.get_program().to_string_lossy()
            )
        })?;
        let server = Server {
            kind,
            addr,
            pid: Some(child.id()),
            child: Some(child),
        };
        server.wait_ready().await?;
        if let (Kind::Flask, Some(gunicorn)) = (kind, &self.flask) {
            server.wait_workers(gunicorn.workers).await?;
        }
        Ok(server)
    }
}

impl Server {
    /// Waits until the server accepts connections (at most 15 s).
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                // Let the first accept's connection go before measuring anything.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!(
            "{} did not accept on {} within 15 s",
            self.kind.name(),
            self.addr
        )
    }

    /// Waits until `workers` worker processes run and have had time to load the app: the
    /// master listens before its workers have booted.
    async fn wait_workers(&self, workers: usize) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let running = self.pid.map_or(0, |pid| tree(pid).len());
            if running > workers {
                // Workers import Flask after the fork; give them that time, then idle.
                tokio::time::sleep(Duration::from_secs(2)).await;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "{} did not start {workers} workers within 30 s",
            self.kind.name()
        )
    }

    /// Resident memory in KiB of the server's process tree, when the process is known.
    pub fn rss_kib(&self) -> Option<u64> {
        let pids = tree(self.pid?);
        (!pids.is_empty()).then(|| pids.iter().filter_map(|&p| rss_kib(p)).sum())
    }

    /// CPU time (user + system) the server's process tree used so far, when known.
    pub fn cpu(&self) -> Option<Duration> {
        let pids = tree(self.pid?);
        (!pids.is_empty()).then(|| pids.iter().filter_map(|&p| cpu_time(p)).sum())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if self.kind == Kind::Flask {
                // The whole group: gunicorn's workers outlive a killed master otherwise.
                if let Ok(pgid) = i32::try_from(child.id()) {
                    // SAFETY: kill only sends a signal, to the group this child leads.
                    unsafe {
                        libc::kill(-pgid, libc::SIGKILL);
                    }
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `pid` and all its descendants that are alive now (empty when `pid` is gone).
pub fn tree(pid: u32) -> Vec<u32> {
    if fs::metadata(format!("/proc/{pid}")).is_err() {
        return Vec::new();
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(parent) = parent_pid(p) {
                children.entry(parent).or_default().push(p);
            }
        }
    }
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        if let Some(kids) = children.get(&all[i]) {
            all.extend(kids);
        }
        i += 1;
    }
    all
}

/// The parent of `pid` (field 4 of `/proc/<pid>/stat`).
fn parent_pid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A loopback address with a port free right now.
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// `VmRSS` of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The memory of every TCP socket on the machine, in KiB (`mem` of `/proc/net/sockstat`,
/// in pages): what the kernel holds in socket buffers.
pub fn tcp_buffers_kib() -> Option<u64> {
    let sockstat = fs::read_to_string("/proc/net/sockstat").ok()?;
    let tcp = sockstat.lines().find(|l| l.starts_with("TCP:"))?;
    let mut fields = tcp.split_whitespace();
    fields.find(|&f| f == "mem")?;
    let pages: u64 = fields.next()?.parse().ok()?;
    Some(pages * 4)
}

/// `utime + stime` of `pid` (fields 14 and 15 of `/proc/<pid>/stat`).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: skip past it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100);
    Some(Duration::from_nanos(
        (utime + stime) * 1_000_000_000 / ticks,
    ))
}

/// Raises this process's open-file limit to its hard limit (children inherit it);
/// returns the soft limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_tree_holds_the_children_and_their_cpu_and_memory() {
        let mut child = Command::new("sleep").arg("5").spawn().expect("sleep runs");
        let me = std::process::id();
        let pids = tree(me);
        assert_eq!(pids[0], me);
        assert!(pids.contains(&child.id()), "{pids:?}");
        let own = rss_kib(me).expect("own RSS");
        let server = Server {
            kind: Kind::Chunkstream,
            addr: "127.0.0.1:9".parse().expect("an address"),
            pid: Some(me),
            child: None,
        };
        assert!(server.rss_kib().expect("tree RSS") > own);
        assert!(server.cpu().is_some());
        child.kill().expect("kill sleep");
        child.wait().expect("reap sleep");
        assert!(!tree(me).contains(&child.id()));
        assert!(tree(u32::MAX).is_empty());
    }
}
