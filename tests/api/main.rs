//! Integration tests: the real server on port 0, real clients over real sockets.

mod browser;
mod clients;
mod compression;
mod docs;
mod errors;
mod eventsource;
mod fuzz;
mod helpers;
mod hostile;
mod jsonl;
mod ops;
mod protocol;
mod scaleout;
mod spec;
mod sse;
mod text;
mod transports;
mod ws;
mod ws_deflate;
mod ws_protocol;
mod wt;
mod wt_client;
mod wt_ops;
