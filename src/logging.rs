//! Log output: tracing-subscriber's `fmt` lines, filtered by `RUST_LOG` (default `info`),
//! written to stderr in batches: at `info` every stream ends with a line, and a `write` per
//! line cost more CPU than formatting it (BENCHMARKS.md, "Logging").

use std::{
    env,
    io::{self, BufWriter, IsTerminal, Write},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    thread::{self, Thread},
    time::Duration,
};

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::{EnvFilter, fmt::MakeWriter, util::SubscriberInitExt};

/// The longest an `info` line waits in memory before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Waiting lines are written at once when they reach this many bytes.
const FLUSH_AT: usize = 32 * 1024;

/// Logs to stderr at `RUST_LOG`'s levels (default `info`); colours only on a terminal.
/// Keep the guard until exit: dropping it writes the last lines.
#[must_use = "dropping the guard writes the waiting lines; keep it until exit"]
pub fn init() -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = io::stderr().is_terminal() && env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let (writer, guard) = Batched::new(io::stderr(), FLUSH_EVERY);
    subscriber(filter, writer, ansi).init();
    guard
}

/// tracing-subscriber's `fmt` at `filter`'s levels, into `writer`.
fn subscriber<W>(filter: EnvFilter, writer: W, ansi: bool) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .finish()
}

/// Writes the waiting lines when dropped.
pub struct LogGuard(Batched);

impl Drop for LogGuard {
    fn drop(&mut self) {
        flush(&mut lock(&self.0.lines));
    }
}

/// Lines gathered in memory and written in batches, like nginx's `access_log … buffer=32k
/// flush=100ms`: when [`FLUSH_AT`] bytes wait, else by a thread `every` after the first
/// waiting line. Warnings and errors are written at once, after the lines before them.
/// A process killed outright (SIGKILL) loses the lines still waiting.
#[derive(Clone)]
struct Batched {
    lines: Arc<Mutex<BufWriter<Box<dyn Write + Send>>>>,
    flusher: Thread,
}

impl Batched {
    fn new(out: impl Write + Send + 'static, every: Duration) -> (Self, LogGuard) {
        let out: Box<dyn Write + Send> = Box::new(out);
        let lines = Arc::new(Mutex::new(BufWriter::with_capacity(FLUSH_AT, out)));
        let waiting = lines.clone();
        // Parked while nothing waits: an idle server does not wake up to write nothing.
        let flusher = thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                loop {
                    thread::park();
                    thread::sleep(every);
                    flush(&mut lock(&waiting));
                }
            })
            .expect("cannot start the log-flush thread");
        let batched = Self {
            lines,
            flusher: flusher.thread().clone(),
        };
        (batched.clone(), LogGuard(batched))
    }

    /// Adds one line (tracing-subscriber hands each over whole, in one `write_all`).
    fn append(&self, line: &[u8], urgent: bool) {
        let mut lines = lock(&self.lines);
        let first = lines.buffer().is_empty();
        // `BufWriter` writes the buffer out itself when the line does not fit.
        let _ = lines.write_all(line);
        if urgent {
            flush(&mut lines);
        } else if first {
            self.flusher.unpark();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves whole lines (or none) in the buffer.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn flush(lines: &mut BufWriter<Box<dyn Write + Send>>) {
    // Nowhere to report a failed log write: the lines are dropped either way.
    let _ = lines.flush();
}

/// The writer of one line; warnings and errors are urgent.
struct Line<'a>(&'a Batched, bool);

impl<'a> MakeWriter<'a> for Batched {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(self, false)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        Line(self, *meta.level() <= Level::WARN)
    }
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.append(buf, self.1);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use futures_util::StreamExt;

    use crate::{
        client::ClientKey,
        generator::StreamParams,
        streams::{Limits, Metrics, Next, Peer, Recipient, Streams, Transport},
    };

    /// What was written, for the test to read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.0).clone()).expect("UTF-8")
        }
    }

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// The log of one SSE stream that sends its 8 chunks in 1.75 s, at `filter`'s levels.
    async fn log_of_one_stream(filter: &str) -> String {
        let log = Captured::default();
        let _default = tracing::subscriber::set_default(subscriber(
            EnvFilter::new(filter),
            log.clone(),
            false,
        ));
        let streams = Streams::new(
            Limits {
                streams: 1,
                per_client: 0,
            },
            Default::default(),
            Metrics::new(),
        );
        let params = StreamParams::new(10, 250, 2).expect("valid");
        let to = Recipient {
            key: ClientKey::of([127, 0, 0, 1].into()),
            peer: Peer(Some(([127, 0, 0, 1], 4242).into())),
            connection: None,
        };
        let mut chunks = streams.open(Transport::Sse, params, to).expect("room");
        while let Some(next) = chunks.next().await {
            assert!(matches!(next, Next::Chunks(_) | Next::End(_)));
        }
        drop(chunks);
        log.text()
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_ends_with_one_line_carrying_its_request_and_outcome() {
        let log = log_of_one_stream("info").await;
        let (time, line) = log.split_once(' ').expect("a timestamp first");
        assert!(time.starts_with("20") && time.ends_with('Z'), "{log}");
        assert_eq!(
            line,
            " INFO chunkstream::streams::chunks: stream ended transport=\"sse\" count=10 start=2 \
             interval_ms=250 peer=socket://127.0.0.1:4242 outcome=\"completed\" chunks=8 \
             elapsed_ms=1750\n"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rust_log_decides_whether_the_line_is_written() {
        for (filter, written) in [
            ("info", true),
            ("warn", false),
            ("off", false),
            ("chunkstream::streams=info,warn", true),
            ("info,chunkstream::streams=warn", false),
        ] {
            let log = log_of_one_stream(filter).await;
            assert_eq!(log.contains("stream ended"), written, "{filter}: {log}");
        }
    }

    /// A subscriber writing through a [`Batched`] into `out` that never flushes by time.
    fn batched_into(out: impl Write + Send + 'static) -> (impl Subscriber, LogGuard) {
        let (writer, guard) = Batched::new(out, Duration::from_secs(3_600));
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .finish();
        (subscriber, guard)
    }

    #[test]
    fn info_lines_wait_and_a_warning_writes_them_in_order() {
        let out = Captured::default();
        let (subscriber, _guard) = batched_into(out.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("first");
            tracing::info!("second");
            assert_eq!(out.text(), "", "info lines wait");
            tracing::warn!("at once");
        });
        assert_eq!(out.text(), " INFO first\n INFO second\n WARN at once\n");
    }

    #[test]
    fn a_full_buffer_is_written_at_once_and_the_guard_writes_the_rest() {
        let out = Captured::default();
        let (subscriber, guard) = batched_into(out.clone());
        let long = "x".repeat(FLUSH_AT - 100);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("{long}");
            assert_eq!(out.text(), "", "the buffer has room");
            tracing::info!("{}", "y".repeat(100));
            assert_eq!(out.text(), format!(" INFO {long}\n"), "the buffer was full");
        });
        drop(guard);
        assert!(
            out.text().ends_with("yyy\n"),
            "the guard wrote the last line"
        );
    }

    /// Sends each write to a channel.
    struct Sent(mpsc::Sender<Vec<u8>>);

    impl Write for Sent {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.0.send(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_flushing_thread_writes_waiting_lines() {
        let (tx, rx) = mpsc::channel();
        let (writer, _guard) = Batched::new(Sent(tx), FLUSH_EVERY);
        writer.make_writer().write_all(b"one\n").expect("buffered");
        writer.make_writer().write_all(b"two\n").expect("buffered");
        // Within the period; the deadline is generous for a busy machine.
        let written = rx
            .recv_timeout(FLUSH_EVERY * 50)
            .expect("written by the thread");
        assert_eq!(written, b"one\ntwo\n");
    }
}
