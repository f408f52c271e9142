//! `text/event-stream`: a `retry:` hint, one `chunk` event per chunk, an `end` event.
//!
//! The bytes are valid for every field order and block shape the WHATWG spec allows; the
//! shapes chosen here are the ones that common parsers which stray from it also read right:
//! - `retry:` opens the first event's block instead of a block of its own, and a
//!   keep-alive comment is not followed by a blank line: some parsers (httpx-sse,
//!   @microsoft/fetch-event-source) dispatch an empty message for every block without data.
//! - `id:` is the last line of each event: some parsers record the id when they read the
//!   line, not when the event is dispatched, so a connection cut inside an event would make
//!   them resume after an event they never received. Last, the window is the final line feed.

use std::time::Duration;

use bytes::{BufMut, BytesMut};

use super::{Encoder, encode::ChunkWriter};
use crate::generator::Chunk;

/// Encodes chunks as Server-Sent Events.
pub struct SseEvents {
    /// The reconnection delay announced to the client.
    retry_ms: u64,
    /// The silence after which a keep-alive comment is sent.
    keep_alive: Duration,
    writer: ChunkWriter,
}

impl SseEvents {
    /// Events announcing `retry_ms` as the reconnection delay, with a keep-alive comment
    /// after `keep_alive` of silence (which only a stream paced at least that slowly has).
    pub fn new(retry_ms: u64, keep_alive: Duration) -> Self {
        Self {
            retry_ms,
            keep_alive,
            writer: ChunkWriter::default(),
        }
    }
}

impl Encoder for SseEvents {
    fn head(&mut self, out: &mut BytesMut) {
        // No blank line: the first event's lines complete this block.
        out.put_slice(b"retry: ");
        out.put_slice(itoa::Buffer::new().format(self.retry_ms).as_bytes());
        out.put_slice(b"\n");
    }

    fn chunk(&mut self, chunk: Chunk, out: &mut BytesMut) {
        out.put_slice(b"event: chunk\ndata: ");
        self.writer.json(chunk, out);
        out.put_slice(b"\nid: ");
        self.writer.index(chunk, out);
        out.put_slice(b"\n\n");
    }

    fn end(&mut self, count: u64, out: &mut BytesMut) {
        out.put_slice(b"event: end\ndata: {\"count\":");
        out.put_slice(itoa::Buffer::new().format(count).as_bytes());
        out.put_slice(b"}\n\n");
    }

    fn keep_alive(&mut self, out: &mut BytesMut) {
        // A comment line alone: it keeps the connection busy and joins the next event's block.
        out.put_slice(b": keep-alive\n");
    }

    fn keep_alive_after(&self) -> Option<Duration> {
        Some(self.keep_alive)
    }
}
