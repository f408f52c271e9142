//! The connection loop: one `select!` over four sources, one call each: server shutdown,
//! the peer's messages ([`Conn::receive`]), the heartbeat ([`Conn::beat`]), and the chunks
//! that are ready ([`Conn::send_ready`]). It ends in an [`Ending`].

use std::{future::Future, pin::pin, time::Duration};

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::time;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::{
    ending::Ending,
    heartbeat::{Beat, Heartbeat, PING_PAYLOAD},
    messages::Messages,
    socket::{BATCH_BYTES, Socket},
};
use crate::{
    generator::ChunkRange,
    streams::{Chunks, Next},
    transport::control::Control,
};

/// After our close frame, how long the peer has to read it and close its side of the
/// connection before the socket is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Ok: the stream goes on. Err: it is over, and why.
type Step = Result<(), Ending>;

/// One connection: its socket and what the loop keeps between turns.
pub struct Conn<S> {
    socket: S,
    shutdown: CancellationToken,
    heartbeat: Heartbeat,
    messages: Messages,
}

impl<S: Socket> Conn<S> {
    /// A connection over `socket` sending `messages`, pinging a silent peer every `ping`,
    /// ended by `shutdown`.
    pub fn new(socket: S, messages: Messages, ping: Duration, shutdown: CancellationToken) -> Self {
        Self {
            socket,
            shutdown,
            heartbeat: Heartbeat::new(ping),
            messages,
        }
    }

    /// The stream proper: returns why it ended.
    pub async fn stream(&mut self, chunks: &mut Chunks) -> Ending {
        loop {
            let step = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => Err(Ending::Shutdown),
                message = self.socket.next() => self.receive(message, chunks).await,
                beat = self.heartbeat.tick() => self.beat(beat).await,
                next = chunks.next() => self.send_ready(next, chunks).await,
            };
            if let Err(ending) = step {
                return ending;
            }
        }
    }

    /// Handles what the peer sent: a control message, a ping, its close, or an error.
    async fn receive(
        &mut self,
        message: Option<Result<Message, WsError>>,
        chunks: &mut Chunks,
    ) -> Step {
        self.heartbeat.heard();
        match message {
            Some(Ok(Message::Text(text))) => self.control(&text, chunks).await,
            Some(Ok(Message::Binary(_))) => Err(Ending::Binary),
            // tungstenite queued the pong; see that it goes out now.
            Some(Ok(Message::Ping(_))) => self.flush().await,
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => Ok(()),
            Some(Ok(Message::Close(_))) => Err(Ending::ClientClosed),
            Some(Err(err)) => Err(Ending::of(err)),
            None => Err(Ending::ClientGone),
        }
    }

    /// Obeys a control message; anything else is answered with an error message.
    async fn control(&mut self, text: &str, chunks: &mut Chunks) -> Step {
        match Control::parse(text) {
            Ok(Control::Pause) => {
                chunks.pause();
                // Nothing more is fed while paused: what is pending goes out now.
                self.flush().await
            }
            Ok(Control::Resume) => {
                chunks.resume();
                Ok(())
            }
            Ok(Control::Stop) => Err(Ending::Stopped),
            Err(error) => {
                let answer = self.messages.error(error);
                chunks.wrote(self.messages.take_made().payload);
                self.send(answer).await
            }
        }
    }

    /// Acts on a heartbeat tick.
    async fn beat(&mut self, beat: Beat) -> Step {
        match beat {
            Beat::Quiet => Ok(()),
            Beat::Ping => {
                self.send(Message::Ping(Bytes::from_static(PING_PAYLOAD)))
                    .await
            }
            Beat::Unanswered => {
                tracing::debug!("websocket peer did not answer a ping");
                Err(Ending::Unresponsive)
            }
        }
    }

    /// Sends the chunks of `next` and those ready after them, fed without a flush per
    /// message; flushes once the stream would wait, or leaves the batch pending once
    /// [`BATCH_BYTES`] of text are fed (the loop comes back for more at once). Ends with the
    /// stream's own ending when it comes.
    async fn send_ready(&mut self, next: Option<Next>, chunks: &mut Chunks) -> Step {
        let mut range = match next {
            Some(Next::Chunks(range)) => range,
            Some(Next::End(outcome)) => return Err(outcome.into()),
            // Only after an end, which ended the loop already.
            None => return Err(Ending::Done),
        };
        let mut text = 0;
        loop {
            text += self.feed_range(range, chunks).await?;
            if text >= BATCH_BYTES {
                return Ok(());
            }
            match chunks.next().now_or_never() {
                Some(Some(Next::Chunks(ready))) => range = ready,
                // The close frame that follows flushes the batch.
                Some(Some(Next::End(outcome))) => return Err(outcome.into()),
                Some(None) => return Err(Ending::Done),
                None => return self.flush().await,
            }
        }
    }

    /// Queues each chunk of `range` as a message, without flushing, and counts their
    /// payloads as written to `chunks`; returns the bytes of text queued (before compression:
    /// see [`BATCH_BYTES`]).
    async fn feed_range(
        &mut self,
        range: ChunkRange,
        chunks: &mut Chunks,
    ) -> Result<usize, Ending> {
        for chunk in range {
            let message = self.messages.chunk(chunk);
            guarded(self.socket.feed(message), &self.shutdown).await?;
        }
        // Counted once per run of messages: the counter is shared with every other stream.
        let made = self.messages.take_made();
        chunks.wrote(made.payload);
        Ok(made.text)
    }

    /// Sends `message` and flushes everything queued before it.
    async fn send(&mut self, message: Message) -> Step {
        guarded(self.socket.send(message), &self.shutdown).await
    }

    /// Flushes queued messages (and tungstenite's queued pongs).
    async fn flush(&mut self) -> Step {
        guarded(self.socket.flush(), &self.shutdown).await
    }

    /// Closes the connection as `ending` requires: our close frame (or tungstenite's answer
    /// to the peer's), then the lingering end. Each step is bounded by [`CLOSE_GRACE`].
    pub async fn close(mut self, ending: Ending) {
        let sent = match ending.close_frame() {
            Some(frame) => time::timeout(CLOSE_GRACE, self.socket.send(frame)).await,
            // tungstenite queued its answer to the peer's close frame as it read it.
            None if ending == Ending::ClientClosed => {
                time::timeout(CLOSE_GRACE, self.socket.flush()).await
            }
            // Nobody to tell: the peer left, stopped reading or went silent.
            None => return,
        };
        if let Ok(Ok(())) = sent {
            self.socket.linger(CLOSE_GRACE).await;
        }
    }
}

/// Runs a write, giving up when the server shuts down.
async fn guarded<F>(op: F, shutdown: &CancellationToken) -> Step
where
    F: Future<Output = Result<(), WsError>>,
{
    let mut op = pin!(op);
    let result = match op.as_mut().now_or_never() {
        // The usual case, a write with room in the buffers: nothing to wait for.
        Some(result) => result,
        None => tokio::select! {
            biased;
            () = shutdown.cancelled() => return Err(Ending::Shutdown),
            result = op => result,
        },
    };
    result.map_err(Ending::of)
}
