//! The deadlines a connection is held to, enforced where they can be seen: at its socket.
//!
//! [`Deadlines`] wraps a connection's socket. The service tells it, through the shared
//! [`Activity`], when a request begins and when its response has ended; the socket sees
//! every byte read and written. Together they apply three rules ([`Timeouts`]):
//!
//! - **header**: a request head must be complete within the header timeout of the
//!   connection's start, or, on a kept-alive connection, of the head's first byte;
//! - **idle**: between a response's end and the next request's first byte, at most the
//!   idle timeout;
//! - **stall**: while the server has bytes to send, the client must accept some within the
//!   stall timeout. Progress of any size resets it, so a slow steady reader never stalls.
//!
//! A deadline that passes fails the socket's read or write with an error, and hyper closes
//! the connection (dropping a streaming body, whose stream then counts itself). The stall
//! rule has to live here: hyper polls a response body only when the socket can take more
//! bytes, so a body never learns that its client stopped reading. One timer serves all three
//! rules, armed only while a deadline applies: an open stream whose client keeps reading has
//! none.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep, sleep_until},
};

use crate::{
    config::Timeouts,
    connection::{Activity, Phase, Seen},
};

/// Why a connection was closed by one of its deadlines: the error its socket returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Expired {
    /// The request head was not complete in time.
    #[error("request head not complete within the header timeout")]
    Header,
    /// No new request began in time.
    #[error("kept-alive connection idle past the idle timeout")]
    Idle,
    /// The client accepted no bytes in time.
    #[error("client accepted no bytes within the stall timeout")]
    Stall,
}

impl Expired {
    /// The deadline behind `err`, if it is one of ours.
    pub fn of(err: &io::Error) -> Option<Expired> {
        err.get_ref()?.downcast_ref::<Expired>().copied()
    }
}

/// A socket held to the connection's deadlines.
pub struct Deadlines<T> {
    io: T,
    activity: Arc<Activity>,
    timeouts: Timeouts,
    /// The activity the read deadline was worked out for.
    seen: Seen,
    /// When the header or idle deadline passes, if one applies now.
    read_by: Option<Instant>,
    /// When the stall deadline passes, if a write is waiting for the client.
    write_by: Option<Instant>,
    /// One timer for whichever deadline comes first; only while one applies.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<T> Deadlines<T> {
    /// `io`, from the moment its connection opened.
    pub fn new(io: T, activity: Arc<Activity>, timeouts: Timeouts) -> Self {
        Self {
            io,
            seen: activity.seen(),
            activity,
            read_by: Some(Instant::now() + timeouts.header),
            timeouts,
            write_by: None,
            timer: None,
        }
    }

    /// Follows the service's news: which read deadline applies now.
    fn follow_activity(&mut self) {
        let seen = self.activity.seen();
        if seen == self.seen {
            return;
        }
        self.seen = seen;
        self.read_by = match seen.phase() {
            Phase::Idle => Some(Instant::now() + self.timeouts.idle),
            Phase::Head => Some(Instant::now() + self.timeouts.header),
            Phase::Busy | Phase::Upgraded => None,
        };
    }

    /// The socket would wait: arms the timer for the first deadline that applies, and fails
    /// once it has passed.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.follow_activity();
        let first = match (self.read_by, self.write_by) {
            (Some(read), Some(write)) => read.min(write),
            (Some(at), None) | (None, Some(at)) => at,
            (None, None) => {
                self.timer = None;
                return Ok(());
            }
        };
        let timer = match &mut self.timer {
            Some(timer) => {
                if timer.deadline() != first {
                    timer.as_mut().reset(first);
                }
                timer
            }
            None => self.timer.insert(Box::pin(sleep_until(first))),
        };
        if timer.as_mut().poll(cx).is_pending() {
            return Ok(());
        }
        let expired = if self.write_by.is_some_and(|at| at <= first) {
            self.activity.stall();
            Expired::Stall
        } else if self.seen.phase() == Phase::Idle {
            Expired::Idle
        } else {
            Expired::Header
        };
        Err(io::Error::new(io::ErrorKind::TimedOut, expired))
    }

    /// A write is waiting for the client: the stall clock runs from the first such moment.
    fn write_waits(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.write_by.is_none() {
            self.write_by = Some(Instant::now() + self.timeouts.stall);
        }
        self.check(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Deadlines<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Pending => {
                self.check(cx)?;
                Poll::Pending
            }
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.follow_activity();
                    if self.seen.phase() == Phase::Idle {
                        // The first byte of the next request: its head is due in time.
                        self.activity.head_began();
                        self.follow_activity();
                    }
                }
                Poll::Ready(Ok(()))
            }
            ready => ready,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Deadlines<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<T> Deadlines<T> {
    /// Notes a write's result: progress stops the stall clock, waiting runs it.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Pending => {
                self.write_waits(cx)?;
                Poll::Pending
            }
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.write_by = None;
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex},
        time::{Instant, sleep},
    };

    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        stall: Duration::from_secs(30),
    };

    /// A connection's socket (held to the deadlines), the client's end, and the activity.
    fn connection(buffer: usize) -> (Deadlines<DuplexStream>, DuplexStream, Arc<Activity>) {
        let (server, client) = duplex(buffer);
        let activity = Arc::new(Activity::default());
        (
            Deadlines::new(server, activity.clone(), TIMEOUTS),
            client,
            activity,
        )
    }

    /// Reads until the socket fails; returns the deadline and when it passed.
    async fn read_until_expired(socket: &mut Deadlines<DuplexStream>) -> (Expired, Duration) {
        let t0 = Instant::now();
        let mut buf = [0u8; 64];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) => panic!("the client closed"),
                Ok(_) => continue,
                Err(err) => return (Expired::of(&err).expect("a deadline"), t0.elapsed()),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_nothing_expires_at_the_header_timeout() {
        let (mut socket, _client, _) = connection(64);
        assert_eq!(
            read_until_expired(&mut socket).await,
            (Expired::Header, TIMEOUTS.header)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_sent_slowly_expires_from_the_connections_start() {
        let (mut socket, mut client, _) = connection(64);
        let drip = tokio::spawn(async move {
            loop {
                sleep(Duration::from_secs(1)).await;
                if client.write_all(b"X").await.is_err() {
                    break;
                }
            }
        });
        assert_eq!(
            read_until_expired(&mut socket).await,
            (Expired::Header, TIMEOUTS.header)
        );
        drip.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_being_served_has_no_read_deadline() {
        let (mut socket, _client, activity) = connection(64);
        activity.request_began();
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(TIMEOUTS.idle * 10, socket.read(&mut buf)).await;
        assert!(read.is_err(), "a busy connection's read ended: {read:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_response_the_next_request_must_begin_within_the_idle_timeout() {
        let (mut socket, _client, activity) = connection(64);
        activity.request_began();
        sleep(Duration::from_secs(100)).await;
        activity.response_ended();
        assert_eq!(
            read_until_expired(&mut socket).await,
            (Expired::Idle, TIMEOUTS.idle)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_head_must_be_complete_a_header_timeout_after_its_first_byte() {
        let (mut socket, mut client, activity) = connection(64);
        activity.request_began();
        activity.response_ended();
        sleep(TIMEOUTS.idle / 2).await;
        client.write_all(b"G").await.unwrap();
        assert_eq!(
            read_until_expired(&mut socket).await,
            (Expired::Header, TIMEOUTS.header)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_upgraded_connection_has_no_read_deadline() {
        let (mut socket, _client, activity) = connection(64);
        activity.request_began();
        activity.upgraded();
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(TIMEOUTS.idle * 10, socket.read(&mut buf)).await;
        assert!(
            read.is_err(),
            "an upgraded connection's read ended: {read:?}"
        );
    }

    /// Writes until the socket fails; returns when, and the bytes written.
    async fn write_until_expired(socket: &mut Deadlines<DuplexStream>) -> (Duration, usize) {
        let t0 = Instant::now();
        let mut written = 0;
        loop {
            match socket.write(&[b'x'; 16]).await {
                Ok(n) => written += n,
                Err(err) => {
                    assert_eq!(Expired::of(&err), Some(Expired::Stall), "{err}");
                    return (t0.elapsed(), written);
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_nothing_stalls_once_the_buffer_is_full() {
        let (mut socket, _client, activity) = connection(64);
        activity.request_began();
        let (elapsed, written) = write_until_expired(&mut socket).await;
        assert_eq!((elapsed, written), (TIMEOUTS.stall, 64));
        assert!(activity.stalled());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_slowly_but_steadily_never_stalls() {
        let (mut socket, mut client, activity) = connection(64);
        activity.request_began();
        let reader = tokio::spawn(async move {
            let mut byte = [0u8; 1];
            // One byte per just under a stall period, for ten periods.
            for _ in 0..10 {
                sleep(TIMEOUTS.stall - Duration::from_secs(1)).await;
                client.read_exact(&mut byte).await.unwrap();
            }
            client
        });
        let writing = tokio::time::timeout(TIMEOUTS.stall * 10, write_until_expired(&mut socket));
        assert!(writing.await.is_err(), "a steady reader was stalled");
        assert!(!activity.stalled());
        // Once it stops reading, it stalls a full period after its last read.
        let _client = reader.await.unwrap();
        let (elapsed, _) = write_until_expired(&mut socket).await;
        assert!(elapsed <= TIMEOUTS.stall, "{elapsed:?}");
        assert!(activity.stalled());
    }
}
