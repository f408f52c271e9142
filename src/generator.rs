//! The one generator: `chunks(params)` lazily yields `Chunk`s `start..count`, paced, cancellable.
//!
//! Every transport is fed by this stream and nothing else makes chunks. Chunk *i* is a pure
//! function of *i*, so a chunk is just its index: its text is written by the transport
//! straight into the outgoing bytes, and resuming a stream needs no stored state.

use std::{fmt, time::Duration};

use async_stream::stream;
use bytes::{BufMut, BytesMut};
use futures_util::Stream;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

/// Largest accepted `count`: the length of the longest stream a client may ask for.
pub const MAX_COUNT: u64 = 100_000_000;
/// Largest accepted `interval_ms`: one minute between two chunks.
pub const MAX_INTERVAL_MS: u64 = 60_000;
/// Default `count`, as in the Flask example the project grew from (`Data Chunk 0..9`).
pub const DEFAULT_COUNT: u64 = 10;

/// The text every chunk starts with; the index follows it.
const TEXT_PREFIX: &[u8] = b"Data Chunk ";

/// One chunk of the stream. It carries only its index; its text is `Data Chunk {index}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Position of the chunk in the stream, from 0.
    pub index: u64,
}

impl Chunk {
    /// Appends the chunk's text, `Data Chunk {index}`, to `out` without allocating.
    pub fn write_text(self, out: &mut BytesMut) {
        out.put_slice(TEXT_PREFIX);
        out.put_slice(itoa::Buffer::new().format(self.index).as_bytes());
    }

    /// Appends the chunk's JSON, `{"index":…,"text":"Data Chunk …"}`, to `out`.
    ///
    /// The text holds only ASCII letters, digits and spaces, so nothing needs escaping.
    pub fn write_json(self, out: &mut BytesMut) {
        let mut digits = itoa::Buffer::new();
        let index = digits.format(self.index).as_bytes();
        out.put_slice(b"{\"index\":");
        out.put_slice(index);
        out.put_slice(b",\"text\":\"");
        out.put_slice(TEXT_PREFIX);
        out.put_slice(index);
        out.put_slice(b"\"}");
    }
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
/// With an interval, chunk `start + k` is due at `t0 + k·interval` (`t0` = the first poll):
/// the schedule is absolute, so a consumer that falls behind gets the late chunks at once
/// and the stream does not drift. When `stop` is cancelled (server shutdown) the stream ends
/// early, at once even while it waits for a due time. Dropping the stream stops all work.
pub fn chunks(params: StreamParams, stop: CancellationToken) -> impl Stream<Item = Chunk> + Send {
    let interval = Duration::from_millis(params.interval_ms);
    stream! {
        let t0 = Instant::now();
        for index in params.start..params.count {
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
            yield Chunk { index };
        }
    }
}

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

    #[tokio::test]
    async fn defaults_yield_data_chunk_0_to_9() {
        let texts: Vec<String> = chunks(StreamParams::default(), CancellationToken::new())
            .map(|c| c.to_string())
            .collect()
            .await;
        let expected: Vec<String> = (0..10).map(|i| format!("Data Chunk {i}")).collect();
        assert_eq!(texts, expected);
    }

    #[tokio::test]
    async fn yields_exactly_start_to_count() {
        let got: Vec<u64> = chunks(params(7, 0, 3), CancellationToken::new())
            .map(|c| c.index)
            .collect()
            .await;
        assert_eq!(got, vec![3, 4, 5, 6]);
        let empty: Vec<Chunk> = chunks(params(5, 0, 5), CancellationToken::new())
            .collect()
            .await;
        assert!(empty.is_empty());
        let none: Vec<Chunk> = chunks(params(0, 0, 0), CancellationToken::new())
            .collect()
            .await;
        assert!(none.is_empty());
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

    #[test]
    fn chunk_encodings_match_the_contract() {
        let mut out = BytesMut::new();
        Chunk { index: 42 }.write_text(&mut out);
        assert_eq!(&out[..], b"Data Chunk 42");
        out.clear();
        Chunk { index: u64::MAX }.write_json(&mut out);
        let json: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(
            json,
            serde_json::json!({"index": u64::MAX, "text": format!("Data Chunk {}", u64::MAX)})
        );
    }

    #[tokio::test(start_paused = true)]
    async fn chunks_are_paced_on_an_absolute_schedule() {
        let t0 = Instant::now();
        let mut stream = pin!(chunks(params(4, 300, 0), CancellationToken::new()));
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
        let made = Arc::new(AtomicU64::new(0));
        let counted = {
            let made = made.clone();
            chunks(params(1000, 0, 0), CancellationToken::new()).inspect(move |_| {
                made.fetch_add(1, Ordering::SeqCst);
            })
        };
        let mut stream = pin!(counted);
        for _ in 0..3 {
            stream.next().await;
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(made.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_a_waiting_stream_at_once() {
        let stop = CancellationToken::new();
        let mut stream = pin!(chunks(params(10, 60_000, 0), stop.clone()));
        assert_eq!(stream.next().await, Some(Chunk { index: 0 }));
        assert_eq!(poll!(stream.next()), Poll::Pending);
        stop.cancel();
        let before = Instant::now();
        assert_eq!(stream.next().await, None);
        assert_eq!(before.elapsed(), Duration::ZERO);
    }
}
