//! The one generator: `chunks(params)` lazily yields the chunks `start..count`, paced, cancellable.
//!
//! Every transport is fed by this stream and nothing else makes chunks. Chunk *i* is a pure
//! function of *i*, so a chunk is just its index: its text is written by the transport
//! straight into the outgoing bytes, and resuming a stream needs no stored state.
//!
//! The stream yields [`ChunkRange`]s: the chunks that are due now, handed over together. A
//! paced stream yields one chunk per range, when it falls due; an unpaced one yields up to
//! [`MAX_RANGE`] at a time, so a transport encodes a run of chunks without one poll (and one
//! shutdown check) per chunk. Still nothing is made ahead of demand: a range is two numbers,
//! and each chunk's bytes are written only when the transport encodes it.

use std::{fmt, ops::Range, time::Duration};

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

/// Most chunks in one [`ChunkRange`] of an unpaced stream: enough to make the per-poll cost
/// vanish (a 64 KiB frame holds ~3 400 text lines), few enough that a shutdown is seen at once.
pub const MAX_RANGE: u64 = 1024;

/// The text every chunk starts with; the index follows it.
const TEXT_PREFIX: &[u8] = b"Data Chunk ";
/// The longest text: the prefix and the 20 digits of `u64::MAX`.
const TEXT_MAX: usize = TEXT_PREFIX.len() + 20;

/// One chunk of the stream. It carries only its index; its text is `Data Chunk {index}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Position of the chunk in the stream, from 0.
    pub index: u64,
}

/// Writes chunks' bytes (text, JSON, index) straight into an output buffer, fast for a run.
///
/// A transport keeps one per stream. It holds the text of the last chunk it wrote; when the
/// next chunk is the one after it, the digits are counted up in place (`…41` → `…42`,
/// `99` → `100`) instead of formatted anew, so a run of chunks costs a few instructions
/// each. Any other index is formatted with `itoa`. Nothing is allocated.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    /// `Data Chunk {index}` of `index`, in the first `len` bytes.
    text: [u8; TEXT_MAX],
    len: usize,
    /// The index whose text `text` holds, once one was written.
    index: Option<u64>,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        let mut text = [b'0'; TEXT_MAX];
        text[..TEXT_PREFIX.len()].copy_from_slice(TEXT_PREFIX);
        Self {
            text,
            len: TEXT_PREFIX.len() + 1,
            index: None,
        }
    }
}

impl ChunkWriter {
    /// Appends the chunk's text, `Data Chunk {index}`.
    pub fn text(&mut self, chunk: Chunk, out: &mut BytesMut) {
        self.load(chunk.index);
        // Copied whole, then the surplus cut off again (`truncate` only lowers the length): a
        // copy of a fixed size compiles to a few moves, where a copy of a slice's length is a
        // call to `memmove`.
        out.extend_from_slice(&self.text);
        out.truncate(out.len() - (TEXT_MAX - self.len));
    }

    /// Appends the chunk's index in decimal.
    pub fn index(&mut self, chunk: Chunk, out: &mut BytesMut) {
        self.load(chunk.index);
        out.put_slice(self.digits());
    }

    /// Appends the chunk's JSON, `{"index":…,"text":"Data Chunk …"}`.
    ///
    /// The text holds only ASCII letters, digits and spaces, so nothing needs escaping.
    pub fn json(&mut self, chunk: Chunk, out: &mut BytesMut) {
        self.load(chunk.index);
        out.put_slice(b"{\"index\":");
        out.put_slice(self.digits());
        out.put_slice(b",\"text\":\"");
        out.put_slice(&self.text[..self.len]);
        out.put_slice(b"\"}");
    }

    /// The digits of the loaded index.
    fn digits(&self) -> &[u8] {
        &self.text[TEXT_PREFIX.len()..self.len]
    }

    /// Makes `text` hold the text of `index`.
    fn load(&mut self, index: u64) {
        match self.index {
            Some(last) if last == index => return,
            Some(last) if last.checked_add(1) == Some(index) => self.count_up(),
            _ => {
                let mut digits = itoa::Buffer::new();
                let digits = digits.format(index).as_bytes();
                self.text[TEXT_PREFIX.len()..][..digits.len()].copy_from_slice(digits);
                self.len = TEXT_PREFIX.len() + digits.len();
            }
        }
        self.index = Some(index);
    }

    /// Adds one to the decimal digits in `text`. (Only called below `u64::MAX`, whose 20
    /// digits are the most `text` has room for.)
    fn count_up(&mut self) {
        let digits = &mut self.text[TEXT_PREFIX.len()..self.len];
        for digit in digits.iter_mut().rev() {
            if *digit < b'9' {
                *digit += 1;
                return;
            }
            *digit = b'0';
        }
        // They were all nines: 99 + 1 = 100.
        digits[0] = b'1';
        self.text[self.len] = b'0';
        self.len += 1;
    }
}

impl fmt::Display for Chunk {
    /// The chunk's text, `Data Chunk {index}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Data Chunk {}", self.index)
    }
}

/// Consecutive chunks that are due now, handed over by the generator together.
///
/// It iterates over its chunks; the index after its last chunk is [`ChunkRange::end`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRange(Range<u64>);

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
            let end = params.count.min(index + per_range);
            yield ChunkRange(index..end);
            index = end;
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

    #[test]
    fn chunk_encodings_match_the_contract() {
        let mut writer = ChunkWriter::default();
        let mut out = BytesMut::new();
        writer.text(Chunk { index: 42 }, &mut out);
        assert_eq!(&out[..], b"Data Chunk 42");
        out.clear();
        writer.json(Chunk { index: u64::MAX }, &mut out);
        let json: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(
            json,
            serde_json::json!({"index": u64::MAX, "text": format!("Data Chunk {}", u64::MAX)})
        );
    }

    #[test]
    fn the_writer_counts_up_across_every_carry_and_formats_any_jump() {
        // Runs across 9 → 10, 99 → 100, …, the largest count, and u64::MAX; then jumps back,
        // repeats and resumes, as a resumed stream or a second stream would.
        let mut indexes: Vec<u64> = (0..=10_001).collect();
        indexes.extend(MAX_COUNT - 10..=MAX_COUNT + 10);
        indexes.extend(u64::MAX - 12..=u64::MAX);
        indexes.extend([5, 5, 3, 999, 1000, 7, 0, 9_999_999_999, 10_000_000_000, 1]);
        let mut writer = ChunkWriter::default();
        for index in indexes {
            let chunk = Chunk { index };
            let mut text = BytesMut::new();
            writer.text(chunk, &mut text);
            assert_eq!(&text[..], chunk.to_string().as_bytes(), "text of {index}");
            let mut digits = BytesMut::new();
            writer.index(chunk, &mut digits);
            assert_eq!(&digits[..], index.to_string().as_bytes(), "index {index}");
            let mut json = BytesMut::new();
            writer.json(chunk, &mut json);
            let expected = format!(r#"{{"index":{index},"text":"Data Chunk {index}"}}"#);
            assert_eq!(&json[..], expected.as_bytes(), "JSON of {index}");
        }
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
        let made = Arc::new(AtomicU64::new(0));
        let counted = {
            let made = made.clone();
            chunks(params(MAX_COUNT, 0, 0), CancellationToken::new()).inspect(move |range| {
                made.fetch_add(range.len() as u64, Ordering::SeqCst);
            })
        };
        let mut stream = pin!(counted);
        for _ in 0..3 {
            stream.next().await;
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(made.load(Ordering::SeqCst), 3 * MAX_RANGE);
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
