//! The session loop: one `select!` over four sources, one call each: server shutdown, the
//! client ([`Peer`]: control lines, its leaving), a `STOP_SENDING` on the chunk stream, and
//! the chunks that are ready ([`Session::send_ready`]). It ends in an [`Ending`].

use std::{future::Future, pin::pin, time::Duration};

use bytes::BytesMut;
use futures_util::{FutureExt, StreamExt};
use tokio::time;
use tokio_util::sync::CancellationToken;
use wtransport::{Connection, SendStream};

use super::{
    CLOSE_GRACE, Options,
    ending::Ending,
    peer::{Event, Peer},
};
use crate::{
    streams::{Chunks, Next},
    transport::{Encoder, FRAME_TARGET, control::Control, jsonl::JsonLines},
};

/// Ok: the stream goes on. Err: it is over, and why.
type Step = Result<(), Ending>;

/// One session: its connection, the chunk stream, and what the loop keeps between turns.
pub struct Session {
    connection: Connection,
    peer: Peer,
    send: SendStream,
    lines: JsonLines,
    out: BytesMut,
    options: Options,
}

impl Session {
    /// Opens the chunk stream of the session on `connection`, or says why it could not.
    pub async fn open(connection: Connection, options: Options) -> Result<Self, (Peer, Ending)> {
        let peer = Peer::new(connection.clone());
        let opening = async {
            let opening = connection
                .open_uni()
                .await
                .map_err(|_| Ending::ClientGone)?;
            opening.await.map_err(|_| Ending::ClientGone)
        };
        match guarded(opening, &options.shutdown, options.stall).await {
            Ok(Ok(send)) => Ok(Self {
                connection,
                peer,
                send,
                lines: JsonLines::default(),
                out: BytesMut::new(),
                options,
            }),
            Ok(Err(ending)) | Err(ending) => Err((peer, ending)),
        }
    }

    /// The stream proper: returns why it ended.
    pub async fn stream(&mut self, chunks: &mut Chunks) -> Ending {
        loop {
            let step = tokio::select! {
                biased;
                () = self.options.shutdown.cancelled() => Err(Ending::Shutdown),
                event = self.peer.next() => receive(event, chunks),
                _ = self.send.stopped() => Err(Ending::ClientGone),
                next = chunks.next() => self.send_ready(next, chunks).await,
            };
            if let Err(ending) = step {
                return ending;
            }
        }
    }

    /// Writes the chunks of `next` and those ready after it in one buffer of up to about
    /// [`FRAME_TARGET`] bytes (a paced chunk goes out alone, at once). Ends with the stream's
    /// own ending when it comes, once what precedes it is written.
    async fn send_ready(&mut self, next: Option<Next>, chunks: &mut Chunks) -> Step {
        let mut range = match next {
            Some(Next::Chunks(range)) => range,
            Some(Next::End(outcome)) => return Err(outcome.into()),
            // Only after an end, which ended the loop already.
            None => return Err(Ending::Done),
        };
        self.out.clear();
        let ended = loop {
            for chunk in range {
                self.lines.chunk(chunk, &mut self.out);
            }
            if self.out.len() >= FRAME_TARGET {
                break None;
            }
            match chunks.next().now_or_never() {
                Some(Some(Next::Chunks(ready))) => range = ready,
                Some(Some(Next::End(outcome))) => break Some(outcome.into()),
                Some(None) => break Some(Ending::Done),
                None => break None,
            }
        };
        let written = self.write().await?;
        chunks.wrote(written);
        ended.map_or(Ok(()), Err)
    }

    /// Writes what [`Session::send_ready`] encoded; returns how many bytes. A client that
    /// accepts no byte of it for the stall timeout (QUIC's flow control holds the writer) is
    /// stalled.
    async fn write(&mut self) -> Result<usize, Ending> {
        let mut written = 0;
        while written < self.out.len() {
            let write = self.send.write(&self.out[written..]);
            match guarded(write, &self.options.shutdown, self.options.stall).await? {
                Ok(n) => written += n,
                // Stopped by the client, or its connection is gone.
                Err(_) => return Err(Ending::ClientGone),
            }
        }
        Ok(written)
    }

    /// Closes the session as `ending` requires (see [`close`]), the chunk stream first:
    /// finished after the last chunk or a `stop`, reset with the session's code otherwise.
    pub async fn close(mut self, ending: Ending) {
        let (code, _) = ending.close();
        match ending {
            Ending::Done | Ending::Stopped => {
                // Completes once the client's stack has acknowledged every byte; its page
                // may not have read them yet ([`close`] waits for that).
                let finished = time::timeout(self.options.stall, self.send.finish()).await;
                if !matches!(finished, Ok(Ok(()))) {
                    let stalled = Ending::Stalled;
                    return close(&self.connection, &mut self.peer, stalled, &self.options).await;
                }
            }
            Ending::Shutdown | Ending::Invalid(_) => {
                let _ = self.send.reset(code.stream());
            }
            Ending::Stalled | Ending::ClientGone => {}
        }
        close(&self.connection, &mut self.peer, ending, &self.options).await;
    }
}

/// Obeys what the client did.
fn receive(event: Event, chunks: &mut Chunks) -> Step {
    match event {
        Event::Control(Control::Pause) => {
            chunks.pause();
            Ok(())
        }
        Event::Control(Control::Resume) => {
            chunks.resume();
            Ok(())
        }
        Event::Control(Control::Stop) => Err(Ending::Stopped),
        Event::Invalid(why) => Err(Ending::Invalid(why)),
        Event::Gone => Err(Ending::ClientGone),
    }
}

/// Closes the session with `ending`'s code and reason, once a client that is still there
/// has had its time to close it itself (a QUIC close discards what the client's stack holds
/// and its application has not read yet, a browser's too):
/// - after a finished chunk stream, until the idle timeout: every byte is acknowledged, but
///   a page reading a fast stream may be seconds behind its QUIC stack. Server shutdown cuts
///   this short: the client then has [`CLOSE_GRACE`] more, and the close says going away;
/// - after a reset (shutdown, a control line that breaks the protocol), [`CLOSE_GRACE`], for
///   the reset to reach the client before the close;
/// - a client that stalled or left is closed at once.
pub async fn close(connection: &Connection, peer: &mut Peer, ending: Ending, options: &Options) {
    let ending = match ending {
        // Its chunk stream finished: the client may still be reading it.
        Ending::Done | Ending::Stopped => {
            let left = left_within(peer, options.idle, &options.shutdown).await;
            if left || !options.shutdown.is_cancelled() {
                ending
            } else {
                Ending::Shutdown
            }
        }
        Ending::Shutdown | Ending::Invalid(_) => {
            left_within(peer, CLOSE_GRACE, &options.shutdown).await;
            ending
        }
        Ending::Stalled | Ending::ClientGone => ending,
    };
    let (code, reason) = ending.close();
    connection.close(code.session(), reason.as_bytes());
}

/// Whether the client closed the session within `wait`, or within [`CLOSE_GRACE`] of the
/// server's shutdown, whichever comes first.
async fn left_within(peer: &mut Peer, wait: Duration, shutdown: &CancellationToken) -> bool {
    let mut left = pin!(async { while peer.next().await != Event::Gone {} });
    tokio::select! {
        () = &mut left => true,
        () = time::sleep(wait) => false,
        () = shutdown.cancelled() => time::timeout(CLOSE_GRACE, left).await.is_ok(),
    }
}

/// Runs `op`, giving up when the server shuts down (`Err(Shutdown)`) or when it has not
/// completed within `stall` (`Err(Stalled)`).
async fn guarded<F: Future>(
    op: F,
    shutdown: &CancellationToken,
    stall: Duration,
) -> Result<F::Output, Ending> {
    let mut op = pin!(op);
    if let Some(done) = op.as_mut().now_or_never() {
        // The usual case, a write with room in the buffers: nothing to wait for.
        return Ok(done);
    }
    tokio::select! {
        biased;
        () = shutdown.cancelled() => Err(Ending::Shutdown),
        done = time::timeout(stall, op) => done.map_err(|_| Ending::Stalled),
    }
}
