//! Transports: each turns a stream's chunks ([`Chunks`](crate::streams::Chunks)) into its
//! wire format, nothing more.
//!
//! `text`, `sse` and `jsonl` are HTTP bodies built by one combinator,
//! [`BodyFrames`](body::BodyFrames) from an [`Encoder`]: it encodes the ready chunks into one
//! buffer (up to [`FRAME_TARGET`]) and hands the buffer over as soon as the stream would wait.
//! Ready chunks share one write; a paced chunk goes out alone, at once. `ws` is a protocol
//! with parts (handshake, connection loop, control messages, framing): a folder; so is `wt`,
//! WebTransport (the session loop, the client's control stream, its endings), which writes
//! JSON Lines' bytes on a QUIC stream.
//! [`encode`] writes a chunk's bytes for all of them, and [`control`] reads what a client may
//! send to steer its stream.

pub mod body;
pub mod compress;
pub mod control;
pub mod encode;
pub mod jsonl;
pub mod sse;
pub mod text;
pub mod ws;
pub mod wt;

use std::time::Duration;

use bytes::BytesMut;

use crate::generator::Chunk;

/// A buffer is handed to hyper once it holds about this much, even if more chunks are
/// ready. hyper writes the frames it holds in one `writev` (up to the server's
/// `MAX_BUF_SIZE`), and what it holds is what a client that stops reading pins down: small
/// frames let it batch several per write and still hold little (BENCHMARKS.md, "Stalled
/// clients").
pub const FRAME_TARGET: usize = 16 * 1024;

/// The bytes of one wire format over HTTP.
pub trait Encoder: Send + Unpin + 'static {
    /// Bytes sent before the first chunk.
    fn head(&mut self, _out: &mut BytesMut) {}
    /// The bytes of one chunk.
    fn chunk(&mut self, chunk: Chunk, out: &mut BytesMut);
    /// Bytes sent after the last chunk of a complete stream (not after a shutdown).
    fn end(&mut self, _count: u64, _out: &mut BytesMut) {}
    /// Bytes sent when nothing was sent for [`Encoder::keep_alive_after`].
    fn keep_alive(&mut self, _out: &mut BytesMut) {}
    /// The silence after which [`Encoder::keep_alive`] is sent; `None`: never.
    fn keep_alive_after(&self) -> Option<Duration> {
        None
    }
}
