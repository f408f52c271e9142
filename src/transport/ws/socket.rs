//! The framing: the WebSocket protocol as the connection loop uses it, a [`Socket`] of
//! tungstenite messages, with this server's limits ([`config`]) and its way to end a
//! connection ([`Socket::linger`]).

use std::{future::Future, time::Duration};

use futures_util::{Sink, Stream, StreamExt, stream::FusedStream};
use tokio::{
    io::{self, AsyncRead, AsyncWrite, AsyncWriteExt},
    time,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Error as WsError, Message, protocol::WebSocketConfig},
};

/// Largest frame, and largest message, a client may send: control messages are a few bytes.
pub const MAX_INCOMING: usize = 4 * 1024;

/// tungstenite writes its buffer out by itself once it holds this much: what a stalled peer
/// holds at most. Also how much chunk text the loop feeds before it looks at the peer's
/// messages again, counted before compression, so that a batch is as many messages (and as
/// short a wait for a `stop`) compressed as not: compressed, each message costs more to make
/// and takes fewer bytes.
pub const BATCH_BYTES: usize = 64 * 1024;

/// The socket limits: 4 KiB frames and messages from the client, and small buffers (a
/// stream's frames are small and flushed whenever the generator would wait).
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_INCOMING))
        .max_frame_size(Some(MAX_INCOMING))
        .read_buffer_size(MAX_INCOMING)
        .write_buffer_size(BATCH_BYTES)
}

/// A WebSocket as the loop uses it: tungstenite messages in and out, and a way to end the
/// connection once the close frames are out.
pub trait Socket:
    Sink<Message, Error = WsError> + Stream<Item = Result<Message, WsError>> + Unpin + Send
{
    /// Ends the connection after our close frame, the lingering way: half-closes it, so the
    /// peer sees that nothing follows the close frame, then reads whatever the peer still
    /// sends until its close frame (or, when the framing is lost, until it closes its side),
    /// for at most `grace`.
    ///
    /// Dropping a socket with unread input resets the connection, and a reset can reach the
    /// peer before it has read our close frame: it then reports an abnormal end instead of
    /// our close code (RFC 6455 §7.1.1). A peer that broke the protocol mid-frame (a frame
    /// over the limit) is still sending the rest of it.
    fn linger(&mut self, grace: Duration) -> impl Future<Output = ()> + Send;
}

impl<T> Socket for WebSocketStream<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn linger(&mut self, grace: Duration) {
        let lingering = async {
            if self.get_mut().shutdown().await.is_err() {
                return;
            }
            // While tungstenite still follows the frames, the peer's close frame is the end.
            while !self.is_terminated() {
                match self.next().await {
                    Some(Ok(Message::Close(_))) | None => return,
                    Some(Ok(_)) => {}
                    Some(Err(_)) => break,
                }
            }
            // tungstenite lost the framing (it stops at its first error): take the bytes off
            // the connection until the peer closes its side.
            let io = self.get_mut();
            let _ = io::copy(io, &mut io::sink()).await;
        };
        let _ = time::timeout(grace, lingering).await;
    }
}
