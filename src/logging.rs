//! Log output: tracing-subscriber's `fmt` lines, filtered by `RUST_LOG` (default `info`),
//! written to stderr in batches: at `info` every stream ends with a line, and a `write` per
//! line cost more CPU than formatting it. Two parts of the line are written here rather than
//! by the library, in the library's very format, because they were most of a short
//! request's logging cost: the fields ([`Fields`]) and the time ([`Timestamps`])
//! (BENCHMARKS.md, "Logging"). Tests compare both with the library's output.

use std::{
    cell::RefCell,
    env, fmt,
    io::{self, BufWriter, IsTerminal, Write},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    thread::{self, Thread},
    time::Duration,
};

use tracing::{
    Level, Metadata, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    EnvFilter,
    field::{MakeVisitor, VisitFmt, VisitOutput},
    fmt::{MakeWriter, format::Writer, time::FormatTime},
    util::SubscriberInitExt,
};

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
        .fmt_fields(Fields)
        .with_timer(Timestamps)
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .finish()
}

/// How a line's fields are written: as tracing-subscriber's default writes them without
/// colours (`name=value`, each after a space, strings quoted and escaped, the message bare),
/// numbers with `itoa` instead of `core::fmt`. Every stream ends with a line of eight fields,
/// most of them numbers, and the default field writer cost more than the rest of a short
/// request's logging (BENCHMARKS.md, "Logging"). Field names are not set in italics on a
/// terminal.
struct Fields;

impl<'w> MakeVisitor<Writer<'w>> for Fields {
    type Visitor = FieldWriter<'w>;

    fn make_visitor(&self, writer: Writer<'w>) -> FieldWriter<'w> {
        FieldWriter {
            writer,
            first: true,
            result: Ok(()),
        }
    }
}

/// Writes one line's fields; see [`Fields`].
struct FieldWriter<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl FieldWriter<'_> {
    /// Writes `field`'s value with `write`, after a space and its name (the message has none).
    fn field(&mut self, field: &Field, write: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let writer = &mut self.writer;
        self.result = (|| {
            if !std::mem::take(&mut self.first) {
                writer.write_char(' ')?;
            }
            if field.name() != "message" {
                writer.write_str(field.name())?;
                writer.write_char('=')?;
            }
            write(writer)
        })();
    }
}

impl Visit for FieldWriter<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.field(field, |w| write!(w, "{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            // As tracing-subscriber does: a message's control characters are escaped, so
            // that no text can drive the terminal that shows the log.
            self.field(field, |w| {
                if w.sanitizes_ansi_escapes() {
                    fmt::Write::write_fmt(&mut Escaping(w), format_args!("{value:?}"))
                } else {
                    write!(w, "{value:?}")
                }
            });
        } else {
            self.field(field, |w| write!(w, "{value:?}"));
        }
    }
}

/// Writes text with the control characters a terminal acts on escaped, as
/// tracing-subscriber escapes a message.
struct Escaping<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for ch in text.chars() {
            match ch {
                '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' => {
                    write!(self.0, "\\x{:02x}", ch as u32)?;
                }
                '\u{80}'..='\u{9f}' => write!(self.0, "\\u{{{:x}}}", ch as u32)?,
                _ => self.0.write_char(ch)?,
            }
        }
        Ok(())
    }
}

impl VisitOutput<fmt::Result> for FieldWriter<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for FieldWriter<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// A line's time, as tracing-subscriber's `SystemTime` writes it
/// (`2026-12-04T16:19:21.088124Z`), with the date and time of day written once a second per
/// thread instead of once a line (BENCHMARKS.md, "Logging").
struct Timestamps;

thread_local! {
    /// The second last written on this thread, and its text up to the seconds.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl FormatTime for Timestamps {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = std::time::SystemTime::now();
        let Ok(since_epoch) = now.duration_since(std::time::UNIX_EPOCH) else {
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        };
        SECOND.with_borrow_mut(|(second, text)| {
            if *second != since_epoch.as_secs() {
                *second = since_epoch.as_secs();
                text.clear();
                write_second(*second, text)?;
            }
            w.write_str(text)?;
            let micros = since_epoch.subsec_micros() + 1_000_000;
            // The digits after the leading 1: always six, zeros kept.
            w.write_char('.')?;
            w.write_str(&itoa::Buffer::new().format(micros)[1..])?;
            w.write_char('Z')
        })
    }
}

/// Writes `2026-12-04T16:19:21` for `secs` since the Unix epoch (UTC, proleptic Gregorian:
/// the days-to-civil conversion of Howard Hinnant's date algorithms).
fn write_second(secs: u64, out: &mut String) -> fmt::Result {
    use fmt::Write as _;
    let days = secs / 86_400;
    let rest = secs % 86_400;
    // Days since 0000-03-01, in 400-year eras of 146 097 days.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rest / 3_600,
        rest / 60 % 60,
        rest % 60
    )
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

    /// What `fields` make of a set of events of every kind of field, as tracing-subscriber's
    /// `fmt` writes them without colours or time.
    fn lines_with<F>(fields: F) -> String
    where
        F: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        let log = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(fields)
            .with_writer(log.clone())
            .with_ansi(false)
            .without_time()
            .with_max_level(Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let peer = "socket://127.0.0.1:4242";
            tracing::info!(
                transport = "sse",
                count = 10u64,
                delta = -3i64,
                peer = %peer,
                quoted = "a \"b\"\n\u{1b}[31m",
                done = true,
                ratio = 0.5,
                list = ?[1, 2],
                "stream ended"
            );
            tracing::warn!("only a message: {}", 42);
            tracing::warn!(
                "a message that would drive a terminal: {}",
                "\u{1b}[31m\u{7}\u{85}"
            );
            tracing::info!(n = u64::MAX);
            let span = tracing::debug_span!("stream", transport = "ws", count = 3u64);
            span.in_scope(|| tracing::debug!(outcome = "stopped", "in a span"));
        });
        log.text()
    }

    #[test]
    fn fields_are_written_as_tracing_subscribers_default_writes_them() {
        let ours = lines_with(Fields);
        let default = lines_with(tracing_subscriber::fmt::format::DefaultFields::new());
        assert_eq!(ours, default);
        assert!(ours.contains("count=10 delta=-3"), "{ours}");
        assert!(ours.contains(r"terminal: \x1b[31m\x07\u{85}"), "{ours}");
    }

    #[test]
    fn seconds_are_written_as_the_calendar_has_them() {
        let cases = [
            (0, "1970-01-01T00:00:00"),
            (951_782_399, "2000-02-28T23:59:59"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_709_164_800, "2024-02-29T00:00:00"),
            (1_796_395_161, "2026-12-04T14:39:21"),
            (4_102_444_799, "2099-12-31T23:59:59"),
            (4_107_542_400, "2100-03-01T00:00:00"),
            (253_402_300_799, "9999-12-31T23:59:59"),
        ];
        for (secs, expected) in cases {
            let mut text = String::new();
            write_second(secs, &mut text).expect("written");
            assert_eq!(text, expected, "{secs}");
        }
    }

    #[test]
    fn timestamps_read_as_tracing_subscribers_do() {
        let write = |timer: &dyn FormatTime| {
            let mut text = String::new();
            timer
                .format_time(&mut Writer::new(&mut text))
                .expect("written");
            text
        };
        // Both read the clock: they agree to the second unless one crosses it, so try again.
        let (ours, theirs) = (0..10)
            .map(|_| {
                let ours = write(&Timestamps);
                (ours, write(&tracing_subscriber::fmt::time::SystemTime))
            })
            .find(|(ours, theirs)| ours[..19] == theirs[..19])
            .expect("the same second within ten tries");
        assert_eq!(ours.len(), theirs.len(), "{ours} {theirs}");
        assert!(ours.ends_with('Z') && ours.as_bytes()[19] == b'.', "{ours}");
        assert!(ours[20..26].bytes().all(|b| b.is_ascii_digit()), "{ours}");
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
