//! The one generator, the Flask example in Rust: `chunks(params)` yields the chunks
//! `Data Chunk start` … `Data Chunk count-1`, each only when the transport asks for the next,
//! paced by `interval_ms`, and it stops the moment the client goes away (the stream is
//! dropped) or the server shuts down.
//!
//! ```python
//! def generate():                  # the seed: a Flask generator
//!     for i in range(10):
//!         yield f"Data Chunk {i}\n"
//! ```
//!
//! Every transport is fed by this stream and nothing else makes chunks. Chunk *i* is a pure
//! function of *i*, so a chunk is just its index: its bytes are written by the transport
//! ([`crate::transport`]), and resuming a stream needs no stored state.
//!
//! The stream hands over the chunks that are due now together, as a [`ChunkRange`]: one
//! chunk when paced, up to [`MAX_RANGE`] when not, so that a transport encodes a run of chunks
//! without one poll (and one shutdown check) per chunk. Still nothing is made ahead of
//! demand: a range is two numbers.

use std::{fmt, ops::Range, time::Duration};

use async_stream::stream;
use futures_util::Stream;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

/// Largest accepted `count`: the length of the longest stream a client may ask for.
pub const MAX_COUNT: u64 = 100_000_000;
/// Largest accepted `interval_ms`: one minute between two chunks.
pub const MAX_INTERVAL_MS: u64 = 60_000;
/// Default `count`, as in the Flask example the project grew from (`Data Chunk 0..9`).
pub const DEFAULT_COUNT: u64 = 10;

/// Most chunks in one [`ChunkRange`] of an unpaced stream: enough to make the per-poll cost
/// vanish, few enough that a shutdown is seen at once (BENCHMARKS.md, "What each change
/// bought").
pub const MAX_RANGE: u64 = 1024;

/// One chunk of the stream. It carries only its index; its text is `Data Chunk {index}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Position of the chunk in the stream, from 0.
    pub index: u64,
}

impl fmt::Display for Chunk {
    /// The chunk's text, `Data Chunk {index}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Data Chunk {}", self.index)
    }
}

/// What a client asked for, validated: the same for every transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamParams {
    count: u64,
    interval_ms: u64,
    start: u64,
}

/// A request for a stream that cannot be served; the message names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// `count` above [`MAX_COUNT`].
    #[error("parameter `count` must be at most {MAX_COUNT}, got {0}")]
    CountTooLarge(u64),
    /// `interval_ms` above [`MAX_INTERVAL_MS`].
    #[error("parameter `interval_ms` must be at most {MAX_INTERVAL_MS}, got {0}")]
    IntervalTooLarge(u64),
    /// `start` past the end of the stream.
    #[error("parameter `start` must be at most `count` ({count}), got {start}")]
    StartPastCount {
        /// The requested start.
        start: u64,
        /// The requested count.
        count: u64,
    },
}

impl Default for StreamParams {
    fn default() -> Self {
        Self {
            count: DEFAULT_COUNT,
            interval_ms: 0,
            start: 0,
        }
    }
}

impl StreamParams {
    /// Validates a request: every range of the contract, and `start <= count`.
    pub fn new(count: u64, interval_ms: u64, start: u64) -> Result<Self, ParamsError> {
        if count > MAX_COUNT {
            return Err(ParamsError::CountTooLarge(count));
        }
        if interval_ms > MAX_INTERVAL_MS {
            return Err(ParamsError::IntervalTooLarge(interval_ms));
        }
        if start > count {
            return Err(ParamsError::StartPastCount { start, count });
        }
        Ok(Self {
            count,
            interval_ms,
            start,
        })
    }

    /// The stream's length: the index after the last chunk.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Pause between two chunks, in milliseconds.
    pub fn interval_ms(&self) -> u64 {
        self.interval_ms
    }

    /// Index of the first chunk.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The same stream, resumed at `start` (which must not pass `count`).
    pub fn resumed_at(self, start: u64) -> Result<Self, ParamsError> {
        Self::new(self.count, self.interval_ms, start)
    }
}

/// The chunks `params.start() .. params.count()`, each made only when the consumer polls for it.
///
/// With an interval, chunk `start + k` is due at `t0 + k·interval` (`t0` = the first poll) and
/// comes alone in its range: the schedule is absolute, so a consumer that falls behind gets
/// the late chunks at once and the stream does not drift. Without one, each poll hands over
/// the next [`MAX_RANGE`] chunks. When `stop` is cancelled (server shutdown) the stream ends
/// early, at once even while it waits for a due time. Dropping the stream stops all work.
pub fn chunks(
    params: StreamParams,
    stop: CancellationToken,
) -> impl Stream<Item = ChunkRange> + Send {
    generate(params, stop, |_| {})
}

/// [`chunks`], telling `made` of each range as the loop makes it (tests count the work).
fn generate(
    params: StreamParams,
    stop: CancellationToken,
    mut made: impl FnMut(&ChunkRange) + Send,
) -> impl Stream<Item = ChunkRange> + Send {
    let interval = Duration::from_millis(params.interval_ms);
    let per_range = if interval.is_zero() { MAX_RANGE } else { 1 };
    stream! {
        let t0 = Instant::now();
        let mut index = params.start;
        while index < params.count {
            let k = index - params.start;
            if !interval.is_zero() && k > 0 {
                // k · interval ≤ 10^8 · 60 000 ms: no overflow in u64 milliseconds.
                let due = t0 + Duration::from_millis(params.interval_ms * k);
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return,
                    () = sleep_until(due) => {}
                }
            } else if stop.is_cancelled() {
                return;
            }
            let range = ChunkRange(index..params.count.min(index + per_range));
            made(&range);
            index = range.end();
            yield range;
        }
    }
}

/// Consecutive chunks that are due now, handed over by the generator together.
///
/// It iterates over its chunks; the index after its last chunk is [`ChunkRange::end`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRange(Range<u64>);

impl From<Range<u64>> for ChunkRange {
    fn from(indexes: Range<u64>) -> Self {
        Self(indexes)
    }
}

impl ChunkRange {
    /// No chunks, ending at `end`.
    pub fn empty(end: u64) -> Self {
        Self(end..end)
    }

    /// The index after the range's last chunk.
    pub fn end(&self) -> u64 {
        self.0.end
    }
}

impl Iterator for ChunkRange {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        self.0.next().map(|index| Chunk { index })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for ChunkRange {}

#[cfg(test)]
mod tests {
    use std::{
        pin::pin,
        sync::{
            Arc,
            atomic::{AtomicU64, Ordering},
        },
        task::Poll,
    };

    use futures_util::{StreamExt, poll};

    use super::*;

    fn params(count: u64, interval_ms: u64, start: u64) -> StreamParams {
        StreamParams::new(count, interval_ms, start).expect("valid test params")
    }

    /// Every chunk of the stream, in order.
    async fn all(params: StreamParams) -> Vec<Chunk> {
        chunks(params, CancellationToken::new())
            .flat_map(futures_util::stream::iter)
            .collect()
            .await
    }

    #[tokio::test]
    async fn defaults_yield_data_chunk_0_to_9() {
        let texts: Vec<String> = all(StreamParams::default())
            .await
            .iter()
            .map(Chunk::to_string)
            .collect();
        let expected: Vec<String> = (0..10).map(|i| format!("Data Chunk {i}")).collect();
        assert_eq!(texts, expected);
    }

    #[tokio::test]
    async fn yields_exactly_start_to_count() {
        let indexes = |chunks: Vec<Chunk>| chunks.iter().map(|c| c.index).collect::<Vec<_>>();
        assert_eq!(indexes(all(params(7, 0, 3)).await), vec![3, 4, 5, 6]);
        assert_eq!(indexes(all(params(7, 5, 3)).await), vec![3, 4, 5, 6]);
        assert!(all(params(5, 0, 5)).await.is_empty());
        assert!(all(params(0, 0, 0)).await.is_empty());
        let long = all(params(3 * MAX_RANGE + 5, 0, 2)).await;
        assert_eq!(indexes(long), (2..3 * MAX_RANGE + 5).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn unpaced_ranges_are_bounded_and_paced_ones_hold_one_chunk() {
        let ranges: Vec<ChunkRange> =
            chunks(params(2 * MAX_RANGE + 1, 0, 0), CancellationToken::new())
                .collect()
                .await;
        let lens: Vec<usize> = ranges.iter().map(ExactSizeIterator::len).collect();
        assert_eq!(lens, vec![MAX_RANGE as usize, MAX_RANGE as usize, 1]);
        assert_eq!(ranges[2].end(), 2 * MAX_RANGE + 1);
        let paced: Vec<ChunkRange> = chunks(params(3, 10, 0), CancellationToken::new())
            .collect()
            .await;
        assert!(paced.iter().all(|range| range.len() == 1), "{paced:?}");
    }

    #[test]
    fn params_are_validated() {
        assert_eq!(
            StreamParams::new(MAX_COUNT + 1, 0, 0),
            Err(ParamsError::CountTooLarge(MAX_COUNT + 1))
        );
        assert_eq!(
            StreamParams::new(1, MAX_INTERVAL_MS + 1, 0),
            Err(ParamsError::IntervalTooLarge(MAX_INTERVAL_MS + 1))
        );
        assert_eq!(
            StreamParams::new(3, 0, 4),
            Err(ParamsError::StartPastCount { start: 4, count: 3 })
        );
        assert!(StreamParams::new(MAX_COUNT, MAX_INTERVAL_MS, MAX_COUNT).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn chunks_are_paced_on_an_absolute_schedule() {
        let t0 = Instant::now();
        let chunks = chunks(params(4, 300, 0), CancellationToken::new());
        let mut stream = pin!(chunks.flat_map(futures_util::stream::iter));
        let mut arrivals = Vec::new();
        while let Some(chunk) = stream.next().await {
            arrivals.push((chunk.index, t0.elapsed()));
            if chunk.index == 1 {
                // A slow consumer: 500 ms of work. Chunk 2 (due at 600 ms) must not slip to 800.
                tokio::time::advance(Duration::from_millis(500)).await;
            }
        }
        let ms = |d: Duration| d.as_millis();
        let got: Vec<(u64, u128)> = arrivals.iter().map(|&(i, d)| (i, ms(d))).collect();
        assert_eq!(got, vec![(0, 0), (1, 300), (2, 800), (3, 900)]);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_made_ahead_of_demand() {
        // Counted inside the loop, where chunks are made: a generator that ran ahead of its
        // consumer (a producer task, a prefetched range) would have made more than was taken.
        for interval_ms in [0, 10] {
            let made = Arc::new(AtomicU64::new(0));
            let counter = made.clone();
            let counted = generate(
                params(MAX_COUNT, interval_ms, 0),
                CancellationToken::new(),
                move |range| {
                    counter.fetch_add(range.len() as u64, Ordering::SeqCst);
                },
            );
            let mut stream = pin!(counted);
            let mut taken = 0;
            for _ in 0..3 {
                taken += stream.next().await.expect("a range").len() as u64;
            }
            // Time passes and every other task runs; nobody asks for more.
            tokio::time::advance(Duration::from_secs(10)).await;
            tokio::task::yield_now().await;
            assert_eq!(made.load(Ordering::SeqCst), taken, "interval {interval_ms}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_a_waiting_stream_at_once() {
        let stop = CancellationToken::new();
        let mut stream = pin!(chunks(params(10, 60_000, 0), stop.clone()));
        assert_eq!(stream.next().await, Some(ChunkRange(0..1)));
        assert_eq!(poll!(stream.next()), Poll::Pending);
        stop.cancel();
        let before = Instant::now();
        assert_eq!(stream.next().await, None);
        assert_eq!(before.elapsed(), Duration::ZERO);

        // An unpaced stream stops at the next range.
        let stop = CancellationToken::new();
        let mut stream = pin!(chunks(params(MAX_COUNT, 0, 0), stop.clone()));
        assert_eq!(stream.next().await, Some(ChunkRange(0..MAX_RANGE)));
        stop.cancel();
        assert_eq!(stream.next().await, None);
    }
}
