//! Transports: each turns the generator's chunk stream into its wire format, nothing more.
//!
//! [`Transport`] lists them: every route, label and test that covers "every transport"
//! comes from that one list.
//!
//! `text`, `sse` and `jsonl` are HTTP bodies built by one combinator,
//! [`Frames`](frames::Frames): it encodes the ready chunks (ranges of them from the
//! generator) into one buffer (up to [`FRAME_TARGET`]) and hands the buffer over as soon as
//! the stream would wait. Ready chunks share one write;
//! a paced chunk goes out alone, at once. `ws` writes frames to a WebSocket sink instead.
//! [`encode`] writes a chunk's bytes for all of them.

pub mod encode;
pub mod frames;
pub mod jsonl;
pub mod sse;
pub mod text;
pub mod ws;

use bytes::BytesMut;

use crate::generator::Chunk;

/// The wire format a stream is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `GET /stream`: chunked `text/plain`.
    Text,
    /// `GET /stream/sse`: Server-Sent Events.
    Sse,
    /// `GET /stream/ws`: WebSocket.
    Ws,
    /// `GET /stream/jsonl`: JSON Lines.
    Jsonl,
}

impl Transport {
    /// Every transport, in metric-label order.
    pub const ALL: [Transport; 4] = [
        Transport::Text,
        Transport::Sse,
        Transport::Ws,
        Transport::Jsonl,
    ];

    /// The `transport` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Text => "text",
            Transport::Sse => "sse",
            Transport::Ws => "ws",
            Transport::Jsonl => "jsonl",
        }
    }

    /// The route that streams with it.
    pub fn path(self) -> &'static str {
        match self {
            Transport::Text => "/stream",
            Transport::Sse => "/stream/sse",
            Transport::Ws => "/stream/ws",
            Transport::Jsonl => "/stream/jsonl",
        }
    }
}
/// A buffer is handed to hyper once it holds about this much, even if more chunks are
/// ready. hyper writes the frames it holds in one `writev` (up to the server's
/// `MAX_BUF_SIZE`), and what it holds is what a client that stops reading pins down: small
/// frames let it batch several per write and still hold little (BENCHMARKS.md, "Stalled
/// clients").
pub const FRAME_TARGET: usize = 16 * 1024;
/// The bytes of one wire format.
pub trait Encoder: Send + Unpin + 'static {
    /// Bytes sent before the first chunk.
    fn head(&mut self, _out: &mut BytesMut) {}
    /// The bytes of one chunk.
    fn chunk(&mut self, chunk: Chunk, out: &mut BytesMut);
    /// Bytes sent after the last chunk of a complete stream (not after a shutdown).
    fn end(&mut self, _count: u64, _out: &mut BytesMut) {}
    /// Bytes sent when nothing was sent for the keep-alive period.
    fn keep_alive(&mut self, _out: &mut BytesMut) {}
}
