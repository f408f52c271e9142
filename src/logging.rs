//! Log output: tracing-subscriber's `fmt` layer, with cheaper formatting and batched writes.
//!
//! Every stream opens a span (transport, params, peer) and ends with one line (outcome,
//! chunks, duration). tracing-subscriber's default field formatter writes each value through
//! `core::fmt` and styles each name even with colours off; for a short stream that was about
//! 20 000 instructions, 40% of the server's work for a 10-chunk `GET /stream` (callgrind).
//! [`PlainFields`] writes the same text, but numbers with `itoa` and plain strings as they
//! are; anything else (the message, `Display` and `Debug` values, errors) still goes to the
//! default formatter, which escapes what needs escaping.
//!
//! Without a terminal (colours off), [`PlainLine`] writes the default `Full` line itself,
//! with a timestamp whose date and time of day are formatted once a second.
//!
//! Lines are written in batches ([`Batched`]): one `write` to stderr for many lines, at
//! least every [`FLUSH_EVERY`], instead of a system call per line. The price: a process
//! killed outright (SIGKILL, abort) loses the `info` lines of its last 100 ms. Warnings and
//! errors are written at once, and a normal exit (including SIGTERM) writes everything.

use std::{
    cell::{Cell, RefCell},
    fmt::{self, Write as _},
    io::{self, IsTerminal, Write as _},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread,
    time::{Duration, SystemTime},
};

use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
};
use tracing_log::NormalizeEvent;
use tracing_subscriber::{
    EnvFilter,
    field::{MakeVisitor, VisitFmt, VisitOutput},
    fmt::{
        FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter,
        format::{DefaultVisitor, Writer},
    },
    registry::LookupSpan,
};

/// The longest an `info` line waits in memory before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Waiting lines are written at once when they reach this many bytes.
const FLUSH_AT: usize = 32 * 1024;

/// Logs to stderr at `RUST_LOG`'s levels (default `info`); colours only on a terminal.
/// Keep the guard until exit: dropping it writes the last lines.
#[must_use = "dropping the guard stops the log writer"]
pub fn init() -> LogGuard {
    let (writer, guard) = Batched::stderr();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(writer)
        .fmt_fields(PlainFields)
        .with_env_filter(filter);
    if io::stderr().is_terminal() {
        // A person is reading: the default line, in colour.
        builder.with_ansi(true).init();
    } else {
        builder
            .with_ansi(false)
            .event_format(PlainLine { timestamps: true })
            .init();
    }
    guard
}

/// The default `Full` line without colours (`{time} {level} {span{fields}:}… {target}: {fields}`),
/// written piece by piece instead of through `core::fmt` and colour styles.
#[derive(Debug, Clone, Copy)]
pub struct PlainLine {
    /// Start each line with the time (tests leave it out to compare lines).
    pub timestamps: bool,
}

impl<S, N> FormatEvent<S, N> for PlainLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Events from the `log` crate carry their real target and level here.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        if self.timestamps {
            write_timestamp(&mut writer, SystemTime::now())?;
            writer.write_char(' ')?;
        }
        writer.write_str(match *meta.level() {
            Level::TRACE => "TRACE ",
            Level::DEBUG => "DEBUG ",
            Level::INFO => " INFO ",
            Level::WARN => " WARN ",
            Level::ERROR => "ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                seen = true;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        writer.write_char('{')?;
                        writer.write_str(fields)?;
                        writer.write_char('}')?;
                    }
                }
                writer.write_char(':')?;
            }
            if seen {
                writer.write_char(' ')?;
            }
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

thread_local! {
    /// The Unix second last formatted on this thread, and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Writes `time` as the default does, RFC 3339 in UTC with microseconds:
/// `2026-11-26T00:51:12.094070Z`. The part up to the second is formatted once a second.
fn write_timestamp(writer: &mut Writer<'_>, time: SystemTime) -> fmt::Result {
    let Ok(since_epoch) = time.duration_since(SystemTime::UNIX_EPOCH) else {
        return writer.write_str("<unknown time>");
    };
    let secs = since_epoch.as_secs();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != secs {
            text.clear();
            format_second(text, secs)?;
            *second = secs;
        }
        writer.write_str(text)
    })?;
    let mut digits = itoa::Buffer::new();
    let micros = digits.format(since_epoch.subsec_micros());
    writer.write_str(&".000000"[..7 - micros.len()])?;
    writer.write_str(micros)?;
    writer.write_char('Z')
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time, in UTC.
fn format_second(out: &mut String, secs: u64) -> fmt::Result {
    let (days, time_of_day) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's `civil_from_days`, for days since 1970-01-01 (never negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        time_of_day / 3_600,
        time_of_day % 3_600 / 60,
        time_of_day % 60
    )
}

/// Log lines gathered in memory and written out in batches, like nginx's
/// `access_log … buffer=… flush=…`: when [`FLUSH_AT`] bytes wait, else by a thread at least
/// every [`FLUSH_EVERY`]. Warnings and errors are written at once, after the lines before them.
#[derive(Clone)]
pub struct Batched(Arc<Batch>);

struct Batch {
    pending: Mutex<Pending>,
    /// Set when the guard is dropped; the flushing thread writes what is left and stops.
    stop: Mutex<bool>,
    wake: Condvar,
}

/// The waiting lines and where they go, under one lock so that lines keep their order.
struct Pending {
    lines: Vec<u8>,
    out: Box<dyn io::Write + Send>,
}

/// Stops the log writer when dropped, after writing every waiting line.
pub struct LogGuard {
    batch: Arc<Batch>,
    flusher: Option<thread::JoinHandle<()>>,
}

impl Batched {
    /// A writer to stderr and the guard of its flushing thread.
    fn stderr() -> (Self, LogGuard) {
        Self::new(io::stderr())
    }

    /// A writer to `out` and the guard of its flushing thread.
    fn new(out: impl io::Write + Send + 'static) -> (Self, LogGuard) {
        let batch = Arc::new(Batch {
            pending: Mutex::new(Pending {
                lines: Vec::with_capacity(FLUSH_AT),
                out: Box::new(out),
            }),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let flusher = {
            let batch = batch.clone();
            thread::Builder::new()
                .name("log-flush".into())
                .spawn(move || batch.flush_periodically())
                .expect("cannot start the log-flush thread")
        };
        let guard = LogGuard {
            batch: batch.clone(),
            flusher: Some(flusher),
        };
        (Self(batch), guard)
    }
}

impl Batch {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves whole lines (or none) in the buffer.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one formatted line (tracing-subscriber hands each line over in one call).
    fn append(&self, line: &[u8], urgent: bool) {
        let mut pending = self.pending();
        pending.lines.extend_from_slice(line);
        if urgent || pending.lines.len() >= FLUSH_AT {
            pending.write_out();
        }
    }

    fn flush_periodically(&self) {
        loop {
            let stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
            let (stop, _) = self
                .wake
                .wait_timeout_while(stop, FLUSH_EVERY, |stop| !*stop)
                .unwrap_or_else(PoisonError::into_inner);
            let stopping = *stop;
            drop(stop);
            self.pending().write_out();
            if stopping {
                return;
            }
        }
    }
}

impl Pending {
    fn write_out(&mut self) {
        if self.lines.is_empty() {
            return;
        }
        // Nowhere to report a failed log write; the lines are dropped either way.
        let _ = self
            .out
            .write_all(&self.lines)
            .and_then(|()| self.out.flush());
        self.lines.clear();
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        *self
            .batch
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.batch.wake.notify_one();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

/// The writer for one log line.
pub struct BatchLine<'a> {
    batch: &'a Batch,
    urgent: bool,
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = BatchLine<'a>;

    fn make_writer(&'a self) -> BatchLine<'a> {
        BatchLine {
            batch: &self.0,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> BatchLine<'a> {
        BatchLine {
            batch: &self.0,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

impl io::Write for BatchLine<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.batch.append(buf, self.urgent);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Formats fields as the default does (`name=value`, space-separated, the message bare),
/// with a fast path for numbers, booleans and plain strings. Field names are not styled.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainFields;

thread_local! {
    /// Reused between lines: one span's or event's fields are gathered here, then handed to
    /// the line in one piece (a span's stored fields then take one exact allocation).
    static SCRATCH: Cell<String> = const { Cell::new(String::new()) };
}

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = PlainVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> PlainVisitor<'a> {
        let mut fields = SCRATCH.take();
        fields.clear();
        PlainVisitor {
            writer,
            fields,
            result: Ok(()),
        }
    }
}

/// Writes one span's or event's fields; see [`PlainFields`].
pub struct PlainVisitor<'a> {
    writer: Writer<'a>,
    fields: String,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Starts the field `name=`; false for the fields the default handles itself (the
    /// message, raw names, `log` metadata).
    fn start(&mut self, field: &Field) -> bool {
        let name = field.name();
        if name == "message" || name.starts_with("r#") || name.starts_with("log.") {
            return false;
        }
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        self.fields.push_str(name);
        self.fields.push('=');
        true
    }

    /// Hands one field to the default formatter.
    fn default(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let is_empty = self.fields.is_empty();
        let mut default = DefaultVisitor::new(Writer::new(&mut self.fields), is_empty);
        record(&mut default);
        self.result = default.finish();
    }
}

/// A string the default would print unchanged between quotes (its `Debug` form).
fn is_plain(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (b.is_ascii_graphic() || b == b' ') && b != b'"' && b != b'\\')
}

impl Visit for PlainVisitor<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.start(field) {
            self.fields.push_str(itoa::Buffer::new().format(value));
        } else {
            self.default(|v| v.record_u64(field, value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.start(field) {
            self.fields.push_str(itoa::Buffer::new().format(value));
        } else {
            self.default(|v| v.record_i64(field, value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.start(field) {
            self.fields.push_str(if value { "true" } else { "false" });
        } else {
            self.default(|v| v.record_bool(field, value));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if is_plain(value) && self.start(field) {
            self.fields.push('"');
            self.fields.push_str(value);
            self.fields.push('"');
        } else {
            self.default(|v| v.record_str(field, value));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.default(|v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // The default writes other fields' values unescaped with `{:?}` too.
        if self.start(field) {
            if self.result.is_ok() {
                self.result = write!(self.fields, "{value:?}");
            }
        } else {
            self.default(|v| v.record_debug(field, value));
        }
    }
}

impl VisitOutput<fmt::Result> for PlainVisitor<'_> {
    fn finish(mut self) -> fmt::Result {
        let result = self
            .result
            .and_then(|()| self.writer.write_str(&self.fields));
        SCRATCH.set(std::mem::take(&mut self.fields));
        result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.fields
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        sync::{Arc, Mutex},
    };

    use tracing_subscriber::fmt::{MakeWriter, format::DefaultFields};

    use super::*;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
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

    /// Every kind of field, in a span and in events, as the streams and transports log them.
    fn log_everything() {
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 4242));
        let span = tracing::info_span!(
            "stream",
            transport = "text",
            count = 10_u64,
            start = 0_u64,
            interval_ms = 250_u64,
            %peer,
        );
        let _entered = span.enter();
        let err = io::Error::other("broken \u{1b}[31mpipe");
        tracing::info!(
            outcome = "completed",
            chunks = 10_u64,
            elapsed_ms = 3_u64,
            "stream ended"
        );
        tracing::warn!(
            delta = -5_i64,
            flag = true,
            quoted = "say \"hi\"",
            escape = "\u{1b}[2J",
            r#type = "raw",
            empty = "",
            debug = ?Some(3),
            error = &err as &(dyn std::error::Error + 'static),
            "odd values: {}",
            "\u{1b}[31mred"
        );
        tracing::info!(chunks = 1_u64);
        tracing::info!("only a message");
    }

    fn output(fast: bool) -> String {
        let captured = Captured::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .without_time();
        if fast {
            let subscriber = builder
                .fmt_fields(PlainFields)
                .event_format(PlainLine { timestamps: false })
                .finish();
            tracing::subscriber::with_default(subscriber, log_everything);
        } else {
            let subscriber = builder.fmt_fields(DefaultFields::new()).finish();
            tracing::subscriber::with_default(subscriber, log_everything);
        }
        let bytes = captured.0.lock().expect("not poisoned").clone();
        String::from_utf8(bytes).expect("UTF-8 log")
    }

    #[test]
    fn plain_lines_and_fields_write_exactly_what_the_default_writes() {
        let fast = output(true);
        let default = output(false);
        assert_eq!(fast, default);
        assert!(
            fast.contains(
                "stream{transport=\"text\" count=10 start=0 interval_ms=250 \
                 peer=127.0.0.1:4242}: chunkstream::logging::tests: stream ended \
                 outcome=\"completed\" chunks=10 elapsed_ms=3"
            ),
            "{fast}"
        );
        assert!(
            !fast.contains('\u{1b}'),
            "escape codes must stay escaped: {fast}"
        );
    }

    fn timestamp(unix: Duration) -> String {
        let mut text = String::new();
        let time = SystemTime::UNIX_EPOCH + unix;
        write_timestamp(&mut Writer::new(&mut text), time).expect("formats");
        text
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let secs = Duration::from_secs;
        assert_eq!(timestamp(secs(0)), "1970-01-01T00:00:00.000000Z");
        // A leap day, then the same second again (from the cache) with other microseconds.
        let leap_day = secs(951_827_696) + Duration::from_micros(7);
        assert_eq!(timestamp(leap_day), "2000-02-29T12:34:56.000007Z");
        let later = secs(951_827_696) + Duration::from_micros(999_999);
        assert_eq!(timestamp(later), "2000-02-29T12:34:56.999999Z");
        assert_eq!(timestamp(secs(951_827_697)), "2000-02-29T12:34:57.000000Z");
        assert_eq!(
            timestamp(secs(4_102_444_799)),
            "2099-12-31T23:59:59.000000Z"
        );
        assert_eq!(
            timestamp(secs(1_795_652_472) + Duration::from_micros(94_070)),
            "2026-11-26T00:21:12.094070Z"
        );
    }

    #[test]
    fn timestamps_agree_with_the_default_timer() {
        // The default formats `now` itself: retry if the two calls straddle a second.
        use tracing_subscriber::fmt::time::FormatTime as _;
        for _ in 0..10 {
            let ours = timestamp(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .expect("after 1970"),
            );
            let mut theirs = String::new();
            tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .expect("formats");
            if ours[..19] == theirs[..19] {
                assert_eq!(ours.len(), theirs.len(), "{ours} vs {theirs}");
                return;
            }
        }
        panic!("our timestamps never matched the default's second");
    }

    /// A sink whose contents the test can read while the writer still runs.
    fn batched() -> (Batched, LogGuard, Captured) {
        let sink = Captured::default();
        let (writer, guard) = Batched::new(sink.clone());
        (writer, guard, sink)
    }

    fn written(sink: &Captured) -> Vec<u8> {
        sink.0.lock().expect("not poisoned").clone()
    }

    #[test]
    fn info_lines_are_written_by_the_flushing_thread() {
        let (writer, _guard, sink) = batched();
        io::Write::write_all(&mut writer.make_writer(), b"one\n").expect("buffered");
        io::Write::write_all(&mut writer.make_writer(), b"two\n").expect("buffered");
        // Written by the flushing thread within the period (a generous deadline).
        let deadline = std::time::Instant::now() + FLUSH_EVERY * 20;
        while written(&sink).is_empty() {
            assert!(std::time::Instant::now() < deadline, "never flushed");
            thread::yield_now();
        }
        assert_eq!(written(&sink), b"one\ntwo\n");
    }

    #[test]
    fn a_warning_is_written_at_once_after_the_lines_before_it() {
        let (writer, _guard, sink) = batched();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("waits");
            tracing::warn!("at once");
        });
        assert_eq!(written(&sink), b" INFO waits\n WARN at once\n");
    }

    #[test]
    fn a_full_buffer_is_written_at_once_and_the_guard_writes_the_rest() {
        let (writer, guard, sink) = batched();
        let big = vec![b'x'; FLUSH_AT];
        io::Write::write_all(&mut writer.make_writer(), &big).expect("buffered");
        assert_eq!(
            written(&sink).len(),
            FLUSH_AT,
            "written when the buffer filled"
        );
        io::Write::write_all(&mut writer.make_writer(), b"last\n").expect("buffered");
        drop(guard);
        assert!(
            written(&sink).ends_with(b"xlast\n"),
            "the guard wrote the last line"
        );
    }
}
