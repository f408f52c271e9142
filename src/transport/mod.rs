//! Transports: each turns the generator's chunk stream into its wire format, nothing more.
//!
//! `text` and `sse` are HTTP bodies built by one combinator, [`Frames`]: it encodes the ready
//! chunks (ranges of them from the generator) into one buffer (up to [`FRAME_TARGET`]) and
//! hands the buffer over as soon as the stream would wait. Ready chunks share one write;
//! a paced chunk goes out alone, at once. `ws` writes frames to a WebSocket sink instead.
//! [`encode`] writes a chunk's bytes for all of them.

pub mod encode;
pub mod sse;
pub mod text;
pub mod ws;

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::time::{Instant, Sleep, sleep};

use crate::{
    generator::{Chunk, ChunkRange},
    streams::{Outcome, StreamGuard},
};

/// A buffer is handed to hyper once it holds this much, even if more chunks are ready.
pub const FRAME_TARGET: usize = 64 * 1024;

/// First allocation for a buffer when the stream was not flowing flat out.
const SMALL_FRAME: usize = 256;

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

/// The chunk stream `S`, encoded by `E` into coalesced frames for an HTTP body.
///
/// Owns the stream's [`StreamGuard`]: when hyper drops the body (client gone) the
/// generator and the guard go with it, and the guard records the outcome.
pub struct Frames<S, E> {
    chunks: Pin<Box<S>>,
    /// Chunks handed over by the generator and not encoded yet (a frame filled first).
    pending: ChunkRange,
    encoder: E,
    guard: StreamGuard,
    /// The index after the last chunk handed over: the stream is complete when the
    /// generator ends with `next == count`.
    next: u64,
    count: u64,
    started: bool,
    done: bool,
    /// The last frame was full: ready chunks are flowing, so allocate a full frame at once.
    /// (A fresh buffer per frame: hyper queues several frames before it writes, so reusing
    /// one buffer never gets it back in time, and `split` costs an extra allocation.)
    flowing: bool,
    keep_alive: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl<S, E> Frames<S, E>
where
    S: Stream<Item = ChunkRange> + Send + 'static,
    E: Encoder,
{
    /// Frames for the chunks `start..count`.
    pub fn new(chunks: S, encoder: E, guard: StreamGuard, start: u64, count: u64) -> Self {
        Self {
            chunks: Box::pin(chunks),
            pending: ChunkRange::empty(start),
            encoder,
            guard,
            next: start,
            count,
            started: false,
            done: false,
            flowing: false,
            keep_alive: None,
        }
    }

    /// Sends the encoder's keep-alive whenever nothing was sent for `period`.
    pub fn keep_alive(mut self, period: Duration) -> Self {
        self.keep_alive = Some((period, Box::pin(sleep(period))));
        self
    }

    /// Encodes ready chunks until the generator would wait, ends, or a frame is full.
    fn fill(&mut self, cx: &mut Context<'_>, out: &mut BytesMut) {
        let mut sent = 0;
        'fill: loop {
            for chunk in self.pending.by_ref() {
                self.encoder.chunk(chunk, out);
                sent += 1;
                if out.len() >= FRAME_TARGET {
                    break 'fill;
                }
            }
            match self.chunks.as_mut().poll_next(cx) {
                Poll::Ready(Some(range)) => {
                    self.next = range.end();
                    self.pending = range;
                }
                Poll::Ready(None) => {
                    self.done = true;
                    if self.next == self.count {
                        self.encoder.end(self.count, out);
                        self.guard.finish(Outcome::Completed);
                    } else {
                        // The generator only ends early when the server shuts down.
                        self.guard.finish(Outcome::Shutdown);
                    }
                    break;
                }
                Poll::Pending => break,
            }
        }
        if sent > 0 {
            self.guard.sent(sent);
        }
    }
}

impl<S, E> Stream for Frames<S, E>
where
    S: Stream<Item = ChunkRange> + Send + 'static,
    E: Encoder,
{
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let capacity = if this.flowing {
            FRAME_TARGET + SMALL_FRAME
        } else {
            SMALL_FRAME
        };
        let mut out = BytesMut::with_capacity(capacity);
        if !this.started {
            this.started = true;
            this.encoder.head(&mut out);
        }
        this.fill(cx, &mut out);
        this.flowing = out.len() >= FRAME_TARGET;
        let frame = out.freeze();
        if frame.is_empty() && !this.done {
            let Some((period, timer)) = &mut this.keep_alive else {
                return Poll::Pending;
            };
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let mut out = BytesMut::with_capacity(SMALL_FRAME);
            this.encoder.keep_alive(&mut out);
            timer.as_mut().reset(Instant::now() + *period);
            // Register the timer's waker again for the next period.
            let _ = timer.as_mut().poll(cx);
            return Poll::Ready(Some(Ok(out.freeze())));
        }
        if frame.is_empty() {
            return Poll::Ready(None);
        }
        if let Some((period, timer)) = &mut this.keep_alive {
            timer.as_mut().reset(Instant::now() + *period);
        }
        Poll::Ready(Some(Ok(frame)))
    }
}
