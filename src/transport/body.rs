//! [`BodyFrames`]: a stream's chunks, encoded into coalesced frames of an HTTP body.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::time::{Instant, Sleep, sleep};

use super::{
    Encoder, FRAME_TARGET,
    compress::{Codec, Then},
};
use crate::{
    generator::ChunkRange,
    streams::{Chunks, Next, Outcome},
};

/// First allocation for a buffer when the stream was not flowing flat out; also more than
/// any one chunk's bytes.
const SMALL_FRAME: usize = 256;

/// A frame is full once it holds this much: one more chunk still fits in [`FRAME_TARGET`],
/// so a full frame never grows past the allocation it started with.
const FULL: usize = FRAME_TARGET - SMALL_FRAME;

/// The pace from which a stream counts as slow (see [`BodyFrames`]'s `slow`).
const SLOW: Duration = Duration::from_secs(1);

/// The HTTP body of `chunks` in `encoder`'s wire format, sent through `codec`: ready chunks
/// coalesced into one frame, each frame handed over (compressed and flushed, if it is) the
/// moment the generator would wait.
pub fn body(chunks: Chunks, encoder: impl Encoder, codec: Codec) -> poem::Body {
    poem::Body::from_bytes_stream(BodyFrames::new(chunks, encoder, codec))
}

/// A stream's chunks, encoded by `E` into coalesced frames for an HTTP body.
///
/// Owns the stream: when hyper drops the body (the client is gone), the generator and its
/// account go with it, and the account counts how the stream ended.
pub struct BodyFrames<E> {
    chunks: Chunks,
    /// Chunks handed over and not encoded yet (a frame filled first).
    pending: ChunkRange,
    encoder: E,
    started: bool,
    done: bool,
    /// The last frame was full: ready chunks are flowing, so a full frame is made at once.
    flowing: bool,
    keep_alive: Option<(Duration, Pin<Box<Sleep>>)>,
    /// How frames go out: compressed or not.
    codec: Codec,
    /// The stream waits at least [`SLOW`] between chunks: a compressor is let go between
    /// its frames, so that thousands of such streams held open hold none.
    slow: bool,
}

impl<E: Encoder> BodyFrames<E> {
    /// The frames of `chunks`, sent through `codec`.
    pub fn new(mut chunks: Chunks, encoder: E, codec: Codec) -> Self {
        chunks.set_encoding(codec.encoding());
        let params = *chunks.params();
        // The only silence in a stream is the wait for the next chunk, `interval_ms`: a
        // stream with a shorter interval never needs a keep-alive, so it gets no timer to
        // reset at every frame.
        let keep_alive = encoder
            .keep_alive_after()
            .filter(|&period| Duration::from_millis(params.interval_ms()) >= period)
            .map(|period| (period, Box::pin(sleep(period))));
        Self {
            chunks,
            pending: ChunkRange::empty(params.start()),
            encoder,
            started: false,
            done: false,
            flowing: false,
            keep_alive,
            codec,
            slow: Duration::from_millis(params.interval_ms()) >= SLOW,
        }
    }

    /// Encodes ready chunks until the stream would wait, ends, or a frame is full.
    fn fill(&mut self, cx: &mut Context<'_>, out: &mut BytesMut) {
        'fill: loop {
            for chunk in self.pending.by_ref() {
                self.encoder.chunk(chunk, out);
                if out.len() >= FULL {
                    break 'fill;
                }
            }
            match Pin::new(&mut self.chunks).poll_next(cx) {
                Poll::Ready(Some(Next::Chunks(range))) => self.pending = range,
                Poll::Ready(Some(Next::End(outcome))) => {
                    if outcome == Outcome::Completed {
                        self.encoder.end(self.chunks.params().count(), out);
                    }
                }
                Poll::Ready(None) => {
                    self.done = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
    }
}

impl<E: Encoder> Stream for BodyFrames<E> {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let capacity = if this.flowing {
            FRAME_TARGET
        } else {
            SMALL_FRAME
        };
        let mut out = BytesMut::with_capacity(capacity);
        if !this.started {
            this.started = true;
            this.encoder.head(&mut out);
        }
        this.fill(cx, &mut out);
        this.flowing = out.len() >= FULL;
        let keep_alive = this.keep_alive.as_mut();
        if out.is_empty() && !this.done {
            // Nothing is ready: the frame is a keep-alive, if the silence has lasted.
            let Some((period, timer)) = keep_alive else {
                return Poll::Pending;
            };
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.encoder.keep_alive(&mut out);
            timer.as_mut().reset(Instant::now() + *period);
            // Register the timer's waker again for the next period.
            let _ = timer.as_mut().poll(cx);
        } else if let Some((period, timer)) = keep_alive {
            timer.as_mut().reset(Instant::now() + *period);
        }
        // Everything goes through the codec, keep-alives and the stream's end included.
        let then = if this.done {
            Then::End
        } else if this.flowing || !this.slow {
            Then::Soon
        } else {
            Then::Later
        };
        let frame = match this.codec.frame(out, then) {
            Ok(frame) => frame,
            // The compressor could not be made (out of memory): the body ends broken, which
            // the client sees, rather than going on uncompressed under its gzip header.
            Err(err) => return Poll::Ready(Some(Err(err))),
        };
        if frame.is_empty() {
            return Poll::Ready(None);
        }
        this.chunks.wrote(frame.len());
        Poll::Ready(Some(Ok(frame)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::BufMut;
    use futures_util::StreamExt;

    use super::*;
    use crate::{
        client::ClientKey,
        generator::{Chunk, StreamParams},
        shutdown::Shutdown,
        streams::{Limits, Metrics, Peer, Recipient, Streams, Transport},
    };

    /// A wire format whose bytes say what happened: `c{index}`, `end`, `ka`.
    struct Marks;

    impl Encoder for Marks {
        fn chunk(&mut self, chunk: Chunk, out: &mut BytesMut) {
            out.put_slice(format!("c{} ", chunk.index).as_bytes());
        }
        fn end(&mut self, _count: u64, out: &mut BytesMut) {
            out.put_slice(b"end ");
        }
        fn keep_alive(&mut self, out: &mut BytesMut) {
            out.put_slice(b"ka ");
        }
        fn keep_alive_after(&self) -> Option<Duration> {
            Some(PERIOD)
        }
    }

    /// The SSE default keep-alive period.
    const PERIOD: Duration = Duration::from_secs(15);

    /// Runs a stream of `count` chunks `interval` apart through [`BodyFrames`] with the
    /// keep-alive `PERIOD`, shut down after `cancel_after` if given; returns each frame with the
    /// second it was handed over (and `"."` when the stream ended), and the outcome it was
    /// counted with.
    async fn frames(
        count: u64,
        interval: Duration,
        cancel_after: Option<Duration>,
    ) -> (Vec<(u64, String)>, String) {
        let params = StreamParams::new(count, interval.as_millis() as u64, 0).expect("params");
        let limits = Limits {
            streams: 1,
            per_client: 0,
        };
        let shutdown = Shutdown::default();
        let streams = Streams::new(limits, shutdown.clone(), Metrics::new());
        let to = Recipient {
            key: ClientKey::of([127, 0, 0, 1].into()),
            peer: Peer(None),
            connection: None,
        };
        let chunks = streams.open(Transport::Sse, params, to).expect("room");
        if let Some(after) = cancel_after {
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                shutdown.begin();
            });
        }
        let t0 = Instant::now();
        let frames = BodyFrames::new(chunks, Marks, Codec::Identity);
        let mut got: Vec<(u64, String)> = frames
            .map(|frame| {
                let text = String::from_utf8(frame.expect("a frame").to_vec()).expect("text");
                (t0.elapsed().as_secs(), text)
            })
            .collect()
            .await;
        got.push((t0.elapsed().as_secs(), ".".to_owned()));
        let rendered = streams.metrics().render();
        let outcome = rendered
            .lines()
            .find(|l| l.starts_with("chunkstream_streams_total") && l.ends_with(" 1"))
            .and_then(|l| l.split("outcome=\"").nth(1))
            .and_then(|l| l.split('"').next())
            .expect("one outcome counted")
            .to_owned();
        (got, outcome)
    }

    fn at(frames: &[(u64, &str)]) -> Vec<(u64, String)> {
        frames.iter().map(|&(t, s)| (t, s.to_owned())).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_keep_alive_follows_each_full_period_of_silence_and_a_chunk_resets_the_clock() {
        let (got, outcome) = frames(3, Duration::from_secs(40), None).await;
        let expected = at(&[
            (0, "c0 "),
            (15, "ka "),
            (30, "ka "),
            (40, "c1 "),
            (55, "ka "),
            (70, "ka "),
            (80, "c2 end "),
            (80, "."),
        ]);
        assert_eq!(got, expected);
        assert_eq!(outcome, "completed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_chunk_due_as_the_period_ends_leaves_no_room_for_a_keep_alive() {
        let (got, _) = frames(3, PERIOD, None).await;
        assert_eq!(
            got,
            at(&[(0, "c0 "), (15, "c1 "), (30, "c2 end "), (30, ".")])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ready_chunks_share_a_frame_and_nothing_follows_the_end() {
        let (got, outcome) = frames(5, Duration::ZERO, None).await;
        assert_eq!(got, at(&[(0, "c0 c1 c2 c3 c4 end "), (0, ".")]));
        assert_eq!(outcome, "completed");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_stream_at_once_without_its_end_and_counts_it() {
        let (got, outcome) =
            frames(10, Duration::from_secs(40), Some(Duration::from_secs(50))).await;
        // Chunk 1 at 40 s; shutdown at 50 s ends the stream then, with no `end`.
        let expected = at(&[(0, "c0 "), (15, "ka "), (30, "ka "), (40, "c1 "), (50, ".")]);
        assert_eq!(got, expected);
        assert_eq!(outcome, "shutdown");
    }
}
