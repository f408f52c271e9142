//! Configuration: every option a `--flag` with a `CHUNKSTREAM_*` env twin; defaults live here.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use clap::{Args, Parser, Subcommand};

const DEFAULT_ADDR: &str = "127.0.0.1:3000";
const DEFAULT_MAX_STREAMS: usize = 10_000;
const DEFAULT_SSE_KEEP_ALIVE_SECS: u64 = 15;
const DEFAULT_SSE_RETRY_MS: u64 = 1_000;
const DEFAULT_WS_PING_SECS: u64 = 30;
const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 5;
const DEFAULT_MAX_STREAMS_PER_CLIENT: usize = 1_000;
const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
const DEFAULT_STALL_TIMEOUT_SECS: u64 = 60;
/// The longest a certificate accepted by its hash may be valid (WebTransport's rule for
/// `serverCertificateHashes`).
pub const MAX_CERT_VALIDITY: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// The command line: serve (the default), or print the OpenAPI document.
#[derive(Debug, Parser)]
#[command(name = "chunkstream", version, about, long_about = None)]
pub struct Cli {
    /// What to do; without a subcommand, serve.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// How to serve.
    #[command(flatten)]
    pub config: Config,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the OpenAPI document (what the committed `openapi.json` holds) and exit.
    Openapi,
}

/// How the server runs.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on, `host:port` (port 0 picks a free port).
    #[arg(long, env = "CHUNKSTREAM_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: SocketAddr,

    /// Most streams open at once, over all transports; past it new streams get 503.
    #[arg(long, env = "CHUNKSTREAM_MAX_STREAMS", default_value_t = DEFAULT_MAX_STREAMS,
          value_parser = parse_max_streams)]
    pub max_streams: usize,

    /// SSE: send a `: keep-alive` comment after this many seconds without traffic.
    #[arg(long, env = "CHUNKSTREAM_SSE_KEEP_ALIVE_SECS", default_value_t = DEFAULT_SSE_KEEP_ALIVE_SECS,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub sse_keep_alive_secs: u64,

    /// SSE: the reconnection delay (`retry:`) announced to clients, in milliseconds.
    #[arg(long, env = "CHUNKSTREAM_SSE_RETRY_MS", default_value_t = DEFAULT_SSE_RETRY_MS,
          value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub sse_retry_ms: u64,

    /// WebSocket: ping a silent peer after this many seconds; drop it if the next ping
    /// interval passes without an answer.
    #[arg(long, env = "CHUNKSTREAM_WS_PING_SECS", default_value_t = DEFAULT_WS_PING_SECS,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub ws_ping_secs: u64,

    /// WebSocket: a cross-site origin allowed to open streams (e.g. `https://example.com`),
    /// besides the server's own. Repeat the flag, or separate with commas in the env var.
    #[arg(long = "allowed-origin", env = "CHUNKSTREAM_ALLOWED_ORIGIN", value_delimiter = ',',
          value_parser = parse_origin)]
    pub allowed_origins: Vec<String>,

    /// On SIGINT/SIGTERM, wait at most this many seconds for open streams to end.
    #[arg(long, env = "CHUNKSTREAM_SHUTDOWN_TIMEOUT_SECS", default_value_t = DEFAULT_SHUTDOWN_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub shutdown_timeout_secs: u64,

    /// Fair share: most streams open at once from one client (an IPv4 address, or an IPv6
    /// /64), over all transports; past it new streams get 429. 0: no cap.
    #[arg(long, env = "CHUNKSTREAM_MAX_STREAMS_PER_CLIENT", default_value_t = DEFAULT_MAX_STREAMS_PER_CLIENT)]
    pub max_streams_per_client: usize,

    /// A reverse proxy (an IP address) whose `X-Forwarded-For`, `X-Forwarded-Host` and
    /// `X-Forwarded-Proto` are believed; from any other peer they are ignored. Repeat the
    /// flag, or separate with commas in the env var.
    #[arg(
        long = "trusted-proxy",
        env = "CHUNKSTREAM_TRUSTED_PROXY",
        value_delimiter = ',',
        value_parser = parse_proxy
    )]
    pub trusted_proxies: Vec<IpAddr>,

    /// Close a connection whose request head is not complete this many seconds after the
    /// connection opened (or, on a kept-alive connection, after the head's first byte).
    #[arg(long, env = "CHUNKSTREAM_HEADER_TIMEOUT_SECS", default_value_t = DEFAULT_HEADER_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub header_timeout_secs: u64,

    /// Close a kept-alive connection on which no new request begins this many seconds after
    /// the previous response ended, and a WebTransport session whose client has not closed
    /// it this long after its stream ended.
    #[arg(long, env = "CHUNKSTREAM_IDLE_TIMEOUT_SECS", default_value_t = DEFAULT_IDLE_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,

    /// End a stream, on any transport, whose client accepts no bytes for this many seconds,
    /// and close its connection. A client that reads slowly but steadily is never stalled.
    #[arg(long, env = "CHUNKSTREAM_STALL_TIMEOUT_SECS", default_value_t = DEFAULT_STALL_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub stall_timeout_secs: u64,

    /// Compress streams for clients that ask (`Accept-Encoding`, the WebSocket's
    /// `permessage-deflate`), flushed with every write: `on` or `off` (identity always).
    #[arg(long, env = "CHUNKSTREAM_COMPRESSION", default_value = "on")]
    pub compression: Compression,

    /// WebTransport (HTTP/3) sessions at `https://HOST:PORT/stream/wt` on UDP: `on` (the
    /// port number of `--addr`, on its IP address), `off`, or an address `host:port` to
    /// listen on (port 0 picks a free port).
    #[arg(long, env = "CHUNKSTREAM_WEBTRANSPORT", default_value = "on",
          value_parser = parse_webtransport)]
    pub webtransport: WebTransport,

    /// WebTransport: the certificate chain (PEM, the server's first) to present, with
    /// `--tls-key`. Without them the server makes its own, self-signed and valid 14 days,
    /// renewed while it runs; a page accepts it by the hash `GET /stream/wt` gives.
    #[arg(long, env = "CHUNKSTREAM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// WebTransport: the private key (PEM) of `--tls-cert`.
    #[arg(long, env = "CHUNKSTREAM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// How long a self-signed certificate is valid; it is renewed halfway. Not an option:
    /// the contract's maximum, which tests shorten to see a renewal.
    #[arg(skip = MAX_CERT_VALIDITY)]
    pub cert_validity: Duration,
}

/// Where WebTransport sessions are served, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebTransport {
    /// On UDP at the HTTP listener's address (its IP address and port number).
    On,
    /// Not served.
    Off,
    /// On UDP at this address.
    At(SocketAddr),
}

impl WebTransport {
    /// The UDP address to serve sessions on, given the HTTP listener's bound address.
    pub fn addr(self, http: SocketAddr) -> Option<SocketAddr> {
        match self {
            WebTransport::On => Some(http),
            WebTransport::Off => None,
            WebTransport::At(addr) => Some(addr),
        }
    }
}

/// Whether streams are compressed for clients that ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// Compressed in the encoding the client prefers among those offered.
    On,
    /// Never compressed.
    Off,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: DEFAULT_ADDR.parse().expect("the default address parses"),
            max_streams: DEFAULT_MAX_STREAMS,
            sse_keep_alive_secs: DEFAULT_SSE_KEEP_ALIVE_SECS,
            sse_retry_ms: DEFAULT_SSE_RETRY_MS,
            ws_ping_secs: DEFAULT_WS_PING_SECS,
            allowed_origins: Vec::new(),
            shutdown_timeout_secs: DEFAULT_SHUTDOWN_TIMEOUT_SECS,
            max_streams_per_client: DEFAULT_MAX_STREAMS_PER_CLIENT,
            trusted_proxies: Vec::new(),
            header_timeout_secs: DEFAULT_HEADER_TIMEOUT_SECS,
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
            stall_timeout_secs: DEFAULT_STALL_TIMEOUT_SECS,
            compression: Compression::On,
            webtransport: WebTransport::On,
            tls_cert: None,
            tls_key: None,
            cert_validity: MAX_CERT_VALIDITY,
        }
    }
}

impl Config {
    /// Silence after which SSE sends a keep-alive comment.
    pub fn sse_keep_alive(&self) -> Duration {
        Duration::from_secs(self.sse_keep_alive_secs)
    }

    /// Interval of WebSocket heartbeats.
    pub fn ws_ping(&self) -> Duration {
        Duration::from_secs(self.ws_ping_secs)
    }

    /// How long shutdown waits for open streams.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// The deadlines every connection is held to.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            header: Duration::from_secs(self.header_timeout_secs),
            idle: Duration::from_secs(self.idle_timeout_secs),
            stall: Duration::from_secs(self.stall_timeout_secs),
        }
    }
}

/// The deadlines against clients that hold a connection without using it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From a connection's start (or a later request's first byte) to a complete request head.
    pub header: Duration,
    /// From the end of a response to the start of the next request on the connection.
    pub idle: Duration,
    /// Longest time a client may accept no bytes while the server has some to send.
    pub stall: Duration,
}

/// A limit of at least one stream.
fn parse_max_streams(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{raw}` is not a positive whole number of streams")),
    }
}

/// `on`, `off` or a socket address.
fn parse_webtransport(raw: &str) -> Result<WebTransport, String> {
    match raw.trim() {
        "on" => Ok(WebTransport::On),
        "off" => Ok(WebTransport::Off),
        addr => addr.parse().map(WebTransport::At).map_err(|_| {
            format!("`{raw}` is neither `on`, `off` nor an address such as 127.0.0.1:4433")
        }),
    }
}

/// A proxy's IP address (spaces around it, as in a comma-separated list, are allowed).
fn parse_proxy(raw: &str) -> Result<IpAddr, String> {
    raw.trim()
        .parse()
        .map_err(|_| format!("`{raw}` is not an IP address"))
}

/// An origin as browsers send it, `scheme://host[:port]`, in the canonical form the
/// WebSocket origin check compares (lower-case, no default port): the one normalisation.
fn parse_origin(raw: &str) -> Result<String, String> {
    crate::origin::Origin::parse(raw)
        .map(crate::origin::Origin::into_string)
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("chunkstream").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_contract() {
        let cli = parse(&[]).expect("no flags parse");
        let c = cli.config;
        let d = Config::default();
        assert_eq!(c.addr, d.addr);
        assert_eq!(c.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(
            (c.max_streams, c.sse_keep_alive_secs, c.sse_retry_ms),
            (10_000, 15, 1_000)
        );
        assert_eq!((c.ws_ping_secs, c.shutdown_timeout_secs), (30, 5));
        assert!(c.allowed_origins.is_empty());
        assert_eq!(c.max_streams_per_client, 1_000);
        assert!(c.trusted_proxies.is_empty());
        assert_eq!(
            (
                c.header_timeout_secs,
                c.idle_timeout_secs,
                c.stall_timeout_secs
            ),
            (10, 60, 60)
        );
        assert_eq!(c.timeouts(), d.timeouts());
        assert_eq!(
            (c.compression, d.compression),
            (Compression::On, Compression::On)
        );
        let off = parse(&["--compression", "off"]).expect("off parses").config;
        assert_eq!(off.compression, Compression::Off);
        assert!(parse(&["--compression", "maybe"]).is_err());
        assert_eq!(
            (c.webtransport, d.webtransport),
            (WebTransport::On, WebTransport::On)
        );
        assert_eq!((c.tls_cert, c.tls_key), (None, None));
        assert_eq!(c.cert_validity, MAX_CERT_VALIDITY);
        let http: SocketAddr = "127.0.0.1:3000".parse().expect("an address");
        assert_eq!(WebTransport::On.addr(http), Some(http));
        let at = parse(&["--webtransport", "[::1]:4433"])
            .expect("an address")
            .config;
        assert_eq!(at.webtransport.addr(http), "[::1]:4433".parse().ok());
        let off = parse(&["--webtransport", "off"])
            .expect("off parses")
            .config;
        assert_eq!(off.webtransport.addr(http), None);
    }

    #[test]
    fn every_option_has_its_env_twin_and_help() {
        use clap::CommandFactory;
        let command = Cli::command();
        let options: Vec<_> = command
            .get_arguments()
            .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
            .collect();
        assert!(options.len() >= 12, "{} options", options.len());
        for arg in options {
            let long = arg.get_long().expect("every option is a --flag");
            let env = format!(
                "CHUNKSTREAM_{}",
                long.replace('-', "_").to_ascii_uppercase()
            );
            let twin = arg.get_env().and_then(|e| e.to_str());
            // `--allowed-origin` and `--trusted-proxy` are repeatable: their twin is singular too.
            assert_eq!(twin, Some(env.as_str()), "--{long}");
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            assert!(help.len() > 20, "--{long} needs a --help text: {help:?}");
        }
    }

    #[test]
    fn origins_are_normalised_and_checked() {
        let cli = parse(&[
            "--allowed-origin",
            "https://Example.com/",
            "--allowed-origin",
            "http://localhost:8080",
        ])
        .expect("valid origins");
        assert_eq!(
            cli.config.allowed_origins,
            ["https://example.com", "http://localhost:8080"]
        );
        for bad in [
            "example.com",
            "https://",
            "https://a.com/path",
            "ftp://a.com",
        ] {
            let err = parse(&["--allowed-origin", bad])
                .expect_err(bad)
                .to_string();
            assert!(err.contains("origin"), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for args in [
            &["--max-streams", "0"][..],
            &["--addr", "nowhere"],
            &["--sse-keep-alive-secs", "0"],
            &["--ws-ping-secs=-1"],
            &["--trusted-proxy", "nginx.local"],
            &["--header-timeout-secs", "0"],
            &["--idle-timeout-secs", "0"],
            &["--stall-timeout-secs", "soon"],
            &["--max-streams-per-client=-1"],
            &["--webtransport", "maybe"],
            &["--tls-cert", "cert.pem"],
        ] {
            let err = parse(args).expect_err("must be refused").to_string();
            let flag = args[0].split('=').next().unwrap_or_default();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }
}
