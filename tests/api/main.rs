//! Integration tests: the real server on port 0, real clients over real sockets.

mod browser;
mod errors;
mod helpers;
mod spec;
mod text;
