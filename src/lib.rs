//! chunkstream: one lazy generator of chunks, streamed four ways with Poem, and measured.
//!
//! # Layout
//! - [`generator`]: `Chunk`, `StreamParams` and `chunks()`, the only place chunks are made.
//! - [`transport`]: the list of transports, and each wire format (`text`, `sse`, `ws`) from
//!   the chunk stream, nothing more.
//! - [`streams`]: the open-stream limits (server-wide and per client) and the guard that
//!   counts a stream's outcome however it ends.
//! - [`origin`]: web origins in one canonical form, and the check against cross-site WebSockets.
//! - [`client`]: who a request comes from, believing forwarded headers only from trusted
//!   proxies.
//! - [`metrics`]: the Prometheus series of the contract, and the outcomes a stream ends with.
//! - [`api`]: the poem-openapi service: operations, validation, JSON errors, the spec.
//! - [`app`]: routes (API, page, docs, spec), binding, running, graceful shutdown.
//! - [`docs`]: `/docs`, Swagger UI and its streaming plugin, served as cacheable assets.
//! - [`server`]: our HTTP/1.1 accept loop (hyper) serving the poem endpoint, holding every
//!   connection to its header, idle and stall deadlines.
//! - [`config`]: command line and `CHUNKSTREAM_*` environment.
//! - [`logging`]: the log output: tracing-subscriber's `fmt`, lines written in batches.
//! - [`shutdown`]: shutdown in one place: the signal, one token, one task tracker, one
//!   deadline.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod client;
pub mod config;
pub mod docs;
pub mod generator;
pub mod logging;
pub mod metrics;
pub mod origin;
pub mod server;
pub mod shutdown;
pub mod streams;
pub mod transport;
