//! [`Chunks`]: one open stream, the one type every transport reads. It hands over the
//! generator's chunks (in ranges), then says how the stream ended ([`Next::End`]).
//!
//! How a stream ended is one value, decided once where it is known, and read by the
//! transport, the metrics and the log line alike:
//! - the generator ended: `completed` when it reached `count`, `shutdown` otherwise (it ends
//!   early only then), told to the transport as [`Next::End`];
//! - the transport ended it for a reason of its own (the client's `stop`, a protocol error):
//!   [`Chunks::end`];
//! - it was dropped unended, because the client went away: `stalled` if its connection was
//!   closed for accepting no bytes, `client_gone` otherwise.
//!
//! Dropping it gives back its room under the limits, updates the metrics once and writes the
//! stream's one log line, however the stream ended.

use std::{
    fmt,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::Duration,
};

use futures_util::Stream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Level, Span};

use super::{
    kind::{Encoding, Outcome, Transport},
    limits::Room,
    metrics::Metrics,
};
use crate::{
    client::ClientKey,
    connection::Activity,
    generator::{self, ChunkRange, StreamParams},
};

/// Who a stream is for, and where it is written: what opening one needs of a request.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// The key the client's fair share is counted by.
    pub key: ClientKey,
    /// The peer's address, for the log.
    pub peer: Peer,
    /// The connection the stream is written to, which tells it if the client stalled.
    pub connection: Option<Arc<Activity>>,
}

/// What a transport gets from its stream next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Chunks that are due now: one when paced, a run when not.
    Chunks(ChunkRange),
    /// The stream is over (nothing follows): every chunk was sent (`Completed`), or the
    /// server is shutting down (`Shutdown`).
    End(Outcome),
}

/// One open stream: the generator's chunks for one client, and the account of them.
pub struct Chunks {
    /// The generator; boxed, as its type has no name.
    generator: Pin<Box<dyn Stream<Item = ChunkRange> + Send>>,
    params: StreamParams,
    /// The index after the last chunk handed over.
    next: u64,
    /// Paused by the client: the generator is not polled, and this task is woken on resume.
    paused: Option<Option<Waker>>,
    /// How the stream ended, once that is known.
    outcome: Option<Outcome>,
    account: Account,
    /// The account is closed: counted and logged.
    closed: bool,
}

/// What is counted of a stream, and given back when it ends.
struct Account {
    transport: Transport,
    encoding: Encoding,
    metrics: Metrics,
    sent: u64,
    opened: Instant,
    span: Span,
    peer: Peer,
    connection: Option<Arc<Activity>>,
    /// Given back when the stream is dropped, or taken by [`Chunks::close_keeping_room`].
    room: Option<Room>,
}

impl Chunks {
    /// A `transport` stream of `params` for `to`, in its `room`, ended early by `shutdown`.
    pub(super) fn open(
        transport: Transport,
        params: StreamParams,
        shutdown: CancellationToken,
        metrics: Metrics,
        room: Room,
        to: Recipient,
    ) -> Self {
        metrics.transport(transport).open.increment(1.0);
        // The line at the end carries every field itself: at `info` that costs less than a
        // span per stream (BENCHMARKS.md, "Logging"). The span is there for `debug`.
        let span = tracing::debug_span!(
            "stream",
            transport = transport.as_str(),
            count = params.count(),
            start = params.start(),
            interval_ms = params.interval_ms(),
            peer = %to.peer,
        );
        span.in_scope(|| tracing::debug!("stream opened"));
        Self {
            generator: Box::pin(generator::chunks(params, shutdown)),
            params,
            next: params.start(),
            paused: None,
            outcome: None,
            closed: false,
            account: Account {
                transport,
                encoding: Encoding::Identity,
                metrics,
                sent: 0,
                opened: Instant::now(),
                span,
                peer: to.peer,
                connection: to.connection,
                room: Some(room),
            },
        }
    }

    /// What the client asked for.
    pub fn params(&self) -> &StreamParams {
        &self.params
    }

    /// The stream's tracing span, for the transport's own events; enabled at `debug`.
    pub fn span(&self) -> &Span {
        &self.account.span
    }

    /// Says in which encoding the transport sends the stream (identity until told).
    pub fn set_encoding(&mut self, encoding: Encoding) {
        self.account.encoding = encoding;
    }

    /// Counts `bytes` of the stream sent on the wire (after compression).
    pub fn wrote(&self, bytes: usize) {
        let account = &self.account;
        account
            .metrics
            .transport(account.transport)
            .bytes_sent(account.encoding)
            .increment(bytes as u64);
    }

    /// Stops handing over chunks until [`Chunks::resume`]: nothing is made meanwhile. The
    /// schedule stays absolute, so the chunks that fell due while paused come at once after.
    pub fn pause(&mut self) {
        self.paused.get_or_insert(None);
    }

    /// Hands over chunks again after [`Chunks::pause`].
    pub fn resume(&mut self) {
        if let Some(Some(waker)) = self.paused.take() {
            waker.wake();
        }
    }

    /// Ends the stream for a reason the transport knows (the client's `stop`, a protocol
    /// error): nothing more is handed over. The first ending told is the one counted.
    pub fn end(&mut self, outcome: Outcome) {
        self.outcome.get_or_insert(outcome);
    }

    /// Closes the stream's account now, as dropping it does, and says what it was counted
    /// as: a transport that still has work after the stream (a closing handshake) counts it
    /// first, so that the metrics never wait on a slow peer.
    pub fn close(mut self) -> Outcome {
        self.close_account()
    }

    /// [`Chunks::close`], but the stream's room under the limits goes to the caller: for a
    /// connection that stays open after its stream (a WebTransport session whose client may
    /// still be reading it), which holds the room until it closes.
    pub fn close_keeping_room(mut self) -> (Outcome, Option<Room>) {
        let room = self.account.room.take();
        (self.close_account(), room)
    }

    /// Counts the stream's outcome, gives back its gauge and writes its end line, once.
    fn close_account(&mut self) -> Outcome {
        let account = &self.account;
        let stalled = account.connection.as_ref().is_some_and(|c| c.stalled());
        let outcome = self.outcome.unwrap_or(if stalled {
            Outcome::Stalled
        } else {
            Outcome::ClientGone
        });
        if std::mem::replace(&mut self.closed, true) {
            return outcome;
        }
        let metrics = account.metrics.transport(account.transport);
        metrics.open.decrement(1.0);
        metrics.ended(outcome).increment(1);
        if tracing::enabled!(Level::INFO) {
            let elapsed: Duration = account.opened.elapsed();
            tracing::info!(
                parent: &account.span,
                transport = account.transport.as_str(),
                count = self.params.count(),
                start = self.params.start(),
                interval_ms = self.params.interval_ms(),
                peer = %account.peer,
                outcome = outcome.as_str(),
                chunks = account.sent,
                elapsed_ms = elapsed.as_millis() as u64,
                "stream ended"
            );
        }
        outcome
    }
}

impl Stream for Chunks {
    type Item = Next;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Next>> {
        let this = self.get_mut();
        if this.outcome.is_some() {
            return Poll::Ready(None);
        }
        if let Some(waker) = &mut this.paused {
            *waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        match this.generator.as_mut().poll_next(cx) {
            Poll::Ready(Some(range)) => {
                this.next = range.end();
                this.account.sent(range.len() as u64);
                Poll::Ready(Some(Next::Chunks(range)))
            }
            Poll::Ready(None) => {
                let outcome = if this.next == this.params.count() {
                    Outcome::Completed
                } else {
                    Outcome::Shutdown
                };
                this.outcome = Some(outcome);
                Poll::Ready(Some(Next::End(outcome)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Account {
    /// Records `n` more chunks handed to the transport.
    fn sent(&mut self, n: u64) {
        self.sent += n;
        self.metrics
            .transport(self.transport)
            .chunks_sent
            .increment(n);
    }
}

impl Drop for Chunks {
    fn drop(&mut self) {
        self.close_account();
    }
}

/// A client's address in the log, as poem writes a socket address
/// (`socket://127.0.0.1:4242`); an IPv4 address without `core::fmt`'s machinery, as it is on
/// every stream's end line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer(pub Option<SocketAddr>);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = match self.0 {
            None => return f.write_str("unknown"),
            Some(SocketAddr::V6(addr)) => return write!(f, "socket://{addr}"),
            Some(SocketAddr::V4(addr)) => addr,
        };
        let mut digits = itoa::Buffer::new();
        f.write_str("socket://")?;
        for (i, octet) in addr.ip().octets().into_iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(digits.format(octet))?;
        }
        f.write_str(":")?;
        f.write_str(digits.format(addr.port()))
    }
}

#[cfg(test)]
mod tests {
    use std::{pin::pin, task::Poll};

    use futures_util::{StreamExt, poll};
    use poem::{Addr, web::RemoteAddr};

    use super::*;
    use crate::streams::{Limits, Streams};

    /// A stream of `count` chunks `interval_ms` apart, the metrics it is counted in, and the
    /// connection it is written to.
    fn open(
        count: u64,
        interval_ms: u64,
        shutdown: &crate::shutdown::Shutdown,
    ) -> (Chunks, Metrics, Arc<Activity>) {
        let limits = Limits {
            streams: 1,
            per_client: 1,
        };
        let metrics = Metrics::new();
        let streams = Streams::new(limits, shutdown.clone(), metrics.clone());
        let connection = Arc::new(Activity::default());
        let params = StreamParams::new(count, interval_ms, 0).expect("params");
        let to = Recipient {
            key: ClientKey::of([127, 0, 0, 1].into()),
            peer: Peer(None),
            connection: Some(connection.clone()),
        };
        let chunks = streams.open(Transport::Ws, params, to).expect("room");
        (chunks, metrics, connection)
    }

    /// The one outcome counted in `metrics`, if one was.
    fn counted(metrics: &Metrics) -> Vec<&'static str> {
        let rendered = metrics.render();
        Outcome::ALL
            .into_iter()
            .filter(|o| {
                let line = format!(
                    "chunkstream_streams_total{{transport=\"ws\",outcome=\"{}\"}} 1",
                    o.as_str()
                );
                rendered.lines().any(|l| l == line)
            })
            .map(Outcome::as_str)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_reaches_count_ends_completed_and_counts_its_chunks() {
        let shutdown = Default::default();
        let (mut chunks, metrics, _) = open(3, 0, &shutdown);
        assert_eq!(
            chunks.next().await,
            Some(Next::Chunks(ChunkRange::from(0..3)))
        );
        assert_eq!(chunks.next().await, Some(Next::End(Outcome::Completed)));
        assert_eq!(chunks.next().await, None);
        drop(chunks);
        assert_eq!(counted(&metrics), ["completed"]);
        assert!(
            metrics
                .render()
                .contains("chunkstream_chunks_sent_total{transport=\"ws\"} 3")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_ends_the_stream_with_shutdown() {
        let shutdown = crate::shutdown::Shutdown::default();
        let (mut chunks, metrics, _) = open(10, 1000, &shutdown);
        assert_eq!(
            chunks.next().await,
            Some(Next::Chunks(ChunkRange::from(0..1)))
        );
        shutdown.begin();
        assert_eq!(chunks.next().await, Some(Next::End(Outcome::Shutdown)));
        drop(chunks);
        assert_eq!(counted(&metrics), ["shutdown"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_stream_hands_over_nothing_until_resumed() {
        let shutdown = Default::default();
        let (chunks, _, _) = open(10, 100, &shutdown);
        let mut chunks = pin!(chunks);
        assert_eq!(
            chunks.next().await,
            Some(Next::Chunks(ChunkRange::from(0..1)))
        );
        chunks.pause();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(poll!(chunks.next()), Poll::Pending);
        chunks.resume();
        // The schedule is absolute: chunk 1 fell due while paused and comes at once.
        assert_eq!(
            poll!(chunks.next()),
            Poll::Ready(Some(Next::Chunks(ChunkRange::from(1..2))))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_transports_ending_is_the_one_counted_and_ends_the_stream() {
        let shutdown = Default::default();
        let (mut chunks, metrics, _) = open(10, 0, &shutdown);
        chunks.end(Outcome::Stopped);
        chunks.end(Outcome::ProtocolError);
        assert_eq!(chunks.next().await, None);
        drop(chunks);
        assert_eq!(counted(&metrics), ["stopped"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_dropped_unended_is_client_gone_or_stalled_as_its_connection_says() {
        let shutdown = Default::default();
        let (chunks, metrics, _) = open(10, 0, &shutdown);
        drop(chunks);
        assert_eq!(counted(&metrics), ["client_gone"]);
        let (chunks, metrics, connection) = open(10, 0, &shutdown);
        connection.stall();
        drop(chunks);
        assert_eq!(counted(&metrics), ["stalled"]);
    }

    #[test]
    fn peers_read_as_poem_writes_them() {
        for addr in [
            "0.0.0.0:0",
            "127.0.0.1:4242",
            "255.255.255.255:65535",
            "[::1]:8080",
        ] {
            let addr: SocketAddr = addr.parse().expect("an address");
            let poem = RemoteAddr(Addr::SocketAddr(addr));
            assert_eq!(Peer(Some(addr)).to_string(), poem.to_string());
        }
        assert_eq!(Peer(None).to_string(), "unknown");
    }
}
