//! chunkstream: one lazy generator of chunks, streamed every way a client can read a stream,
//! with Poem, and measured.
//!
//! # Layout
//! Each module uses only those listed before it (`config` and `shutdown` aside, which any
//! may use).
//! - [`generator`]: `Chunk`, `StreamParams` and `chunks()`, the only place chunks are made.
//! - [`connection`]: what a connection and the requests on it tell each other (a stalled
//!   client, for one).
//! - [`client`]: who a request comes from, believing forwarded headers only from trusted
//!   proxies; the key each client's fair share of streams is counted by.
//! - [`origin`]: web origins in one canonical form, and the check against cross-site
//!   WebSockets.
//! - [`streams`]: the open streams: the list of transports, the outcomes a stream ends with,
//!   the limits (server-wide and per client), the metrics, and `Chunks`, the one type every
//!   transport reads (the generator's chunks for one client, then how the stream ended).
//! - [`transport`]: each wire format from a stream's chunks, nothing more: `text`, `sse` and
//!   `jsonl` as HTTP bodies (`body`), `ws` with its handshake, loop, control and framing,
//!   `wt` (WebTransport) with its session loop, the client's control stream and endings.
//! - [`api`]: the poem-openapi service: one operation per transport over one skeleton, the
//!   stream parameters, JSON errors, the spec.
//! - [`certs`]: the WebTransport certificate: the configured one, or the server's own,
//!   self-signed and renewed while it runs.
//! - [`assets`]: files served as they are (the page, the docs, the OpenAPI documents), each
//!   with its `ETag`, and in gzip when the client asks.
//! - [`docs`]: `/docs`, Swagger UI and its streaming plugin, served as cacheable assets.
//! - [`server`]: our HTTP/1.1 accept loop (hyper) serving the app, holding every connection
//!   to its header, idle and stall deadlines; and the WebTransport endpoint (HTTP/3 on UDP).
//! - [`app`]: routes (API, page, docs, spec), binding, running, graceful shutdown.
//! - [`config`]: command line and `CHUNKSTREAM_*` environment.
//! - [`logging`]: the log output: tracing-subscriber's `fmt`, lines written in batches.
//! - [`shutdown`]: shutdown in one place: the signal, one token, one task tracker, one
//!   deadline.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod assets;
pub mod certs;
pub mod client;
pub mod config;
pub mod connection;
pub mod docs;
pub mod generator;
pub mod logging;
pub mod origin;
pub mod server;
pub mod shutdown;
pub mod streams;
pub mod transport;
