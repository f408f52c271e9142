//! The servers under test as child processes, and what `/proc` says about them: resident
//! memory (`VmRSS`) and CPU time (`utime + stime`).

use std::{
    fs,
    net::{SocketAddr, TcpListener},
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
    /// The idiomatic axum baseline.
    Axum,
    /// The bare hyper floor.
    Floor,
}

impl Kind {
    /// The name used in tables and plots.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chunkstream => "chunkstream",
            Kind::Axum => "axum",
            Kind::Floor => "hyper floor",
        }
    }
}

/// How to start the servers.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The chunkstream binary.
    pub chunkstream_bin: PathBuf,
    /// `RUST_LOG` for chunkstream (its default, `info`, logs one line per stream).
    pub chunkstream_log: String,
    /// Extra environment for chunkstream.
    pub chunkstream_env: Vec<(String, String)>,
    /// An already running chunkstream to measure instead of starting one (no `/proc` data
    /// unless its pid is given).
    pub external: Option<(SocketAddr, Option<u32>)>,
    /// Where server output goes.
    pub log_dir: PathBuf,
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
        let log_path = self
            .log_dir
            .join(format!("{}.log", kind.name().replace(' ', "-")));
        let log = fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = match kind {
            Kind::Chunkstream => {
                let mut c = Command::new(&self.chunkstream_bin);
                c.arg("--addr")
                    .arg(addr.to_string())
                    .env("CHUNKSTREAM_MAX_STREAMS", "1000000")
                    .env("RUST_LOG", &self.chunkstream_log)
                    .envs(self.chunkstream_env.iter().map(|(k, v)| (k, v)));
                c
            }
            Kind::Axum | Kind::Floor => {
                let mut c = Command::new(std::env::current_exe()?);
                c.arg(if kind == Kind::Axum {
                    "serve-axum"
                } else {
                    "serve-floor"
                })
                .arg("--addr")
                .arg(addr.to_string());
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

    /// Resident memory in KiB, when the process is known.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid?)
    }

    /// CPU time (user + system) used so far, when the process is known.
    pub fn cpu(&self) -> Option<Duration> {
        cpu_time(self.pid?)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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
