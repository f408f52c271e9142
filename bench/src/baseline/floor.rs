//! The floor: bare hyper 1 (HTTP/1.1 only, no framework) writing `Data Chunk {i}\n` lines
//! with `itoa` into frames of up to 64 KiB — as fast as `/stream` goes on this machine.
//!
//! The body is a hand-written `http_body::Body`: every poll packs as many lines as fit in
//! 64 KiB and returns them at once; nothing is allocated per line. With `interval_ms > 0`
//! it sends one line per frame on absolute deadlines.
//!
//! `/stream/sse` does the same with chunkstream's event format (no `Last-Event-ID`, no
//! keep-alive): the reference for what a held SSE connection costs in bare hyper; and
//! `/stream/jsonl` with chunkstream's JSON Lines.

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Body, Frame};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, Sleep};

use super::StreamQuery;

/// Largest frame the floor writes.
const FRAME: usize = 64 * 1024;
/// Longest item: an SSE event with a 20-digit index three times, with room to spare.
const MAX_LINE: usize = 160;

/// The wire formats the floor writes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    /// `Data Chunk {i}\n`.
    Text,
    /// chunkstream's events.
    Sse,
    /// `{"index":i,"text":"Data Chunk i"}\n`.
    Jsonl,
}

/// The lines `next..count`, packed into frames.
struct Lines {
    format: Format,
    /// Whether the SSE `retry` head went out.
    head_sent: bool,
    next: u64,
    first: u64,
    count: u64,
    interval: Option<Duration>,
    /// When the next paced line is due (`None` until the first line went out).
    deadline: Option<Pin<Box<Sleep>>>,
    started: Instant,
    /// Reused between frames: once hyper dropped the last frame, `reserve` takes the
    /// allocation back instead of asking malloc for 64 KiB again.
    buf: BytesMut,
}

impl Lines {
    fn new(q: StreamQuery, format: Format) -> Self {
        Self {
            format,
            head_sent: format != Format::Sse,
            next: q.start.min(q.count),
            first: q.start.min(q.count),
            count: q.count,
            interval: q.interval(),
            deadline: None,
            started: Instant::now(),
            buf: BytesMut::new(),
        }
    }

    fn put_line(&mut self, out: &mut BytesMut) {
        if !self.head_sent {
            out.put_slice(b"retry: 1000\n");
            self.head_sent = true;
        }
        let mut digits = itoa::Buffer::new();
        let index = digits.format(self.next).as_bytes();
        match self.format {
            Format::Sse => {
                out.put_slice(b"event: chunk\ndata: ");
                put_json(out, index);
                out.put_slice(b"\nid: ");
                out.put_slice(index);
                out.put_slice(b"\n\n");
            }
            Format::Jsonl => {
                put_json(out, index);
                out.put_u8(b'\n');
            }
            Format::Text => {
                out.put_slice(b"Data Chunk ");
                out.put_slice(index);
                out.put_u8(b'\n');
            }
        }
        self.next += 1;
        if self.format == Format::Sse && self.next == self.count {
            out.put_slice(b"event: end\ndata: {\"count\":");
            out.put_slice(itoa::Buffer::new().format(self.count).as_bytes());
            out.put_slice(b"}\n\n");
        }
    }
}

/// A chunk's JSON, `{"index":…,"text":"Data Chunk …"}`, from its index's digits.
fn put_json(out: &mut BytesMut, index: &[u8]) {
    out.put_slice(b"{\"index\":");
    out.put_slice(index);
    out.put_slice(b",\"text\":\"Data Chunk ");
    out.put_slice(index);
    out.put_slice(b"\"}");
}

impl Body for Lines {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.next >= self.count {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        if let Some(interval) = this.interval {
            if let Some(sleep) = this.deadline.as_mut() {
                ready!(sleep.as_mut().poll(cx));
            }
            let mut out = BytesMut::with_capacity(MAX_LINE);
            this.put_line(&mut out);
            // Absolute deadlines: line k is due at start + k × interval, so no drift.
            let sent = u32::try_from(this.next - this.first).unwrap_or(u32::MAX);
            let due = this.started + interval * sent;
            match this.deadline.as_mut() {
                Some(sleep) => sleep.as_mut().reset(due),
                None => this.deadline = Some(Box::pin(tokio::time::sleep_until(due))),
            }
            return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
        }
        let mut out = std::mem::take(&mut this.buf);
        out.reserve(FRAME);
        while this.next < this.count && out.len() + MAX_LINE <= FRAME {
            this.put_line(&mut out);
        }
        let frame = out.split().freeze();
        this.buf = out;
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.count
    }
}

/// Answers `GET /stream`, `GET /stream/sse` and `GET /stream/jsonl` (any other path: 404).
async fn handle(req: Request<Incoming>) -> Result<Response<Lines>, Infallible> {
    let mut q = StreamQuery::parse(req.uri().query());
    let (format, content_type) = match req.uri().path() {
        "/stream/sse" => (Format::Sse, "text/event-stream"),
        "/stream/jsonl" => (Format::Jsonl, "application/jsonl"),
        _ => (Format::Text, "text/plain; charset=utf-8"),
    };
    let mut response = Response::builder().header("content-type", content_type);
    if !matches!(
        req.uri().path(),
        "/stream" | "/stream/sse" | "/stream/jsonl"
    ) {
        q.count = 0;
        response = response.status(404);
    }
    Ok(response
        .body(Lines::new(q, format))
        .expect("a static response builds"))
}

/// Serves the floor on `addr` until the process is killed: one task per connection.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
