//! WebSocket: each chunk one text message, client control, heartbeats, limits and close codes.
//!
//! One file a job:
//! - [`handshake`]: the opening handshake of RFC 6455, checked before anything is opened;
//! - [`extension`]: the negotiation of permessage-deflate (RFC 7692) in that handshake;
//! - [`conn`]: the connection loop, one `select!` whose arms each call one part;
//! - [`control`](crate::transport::control): what the client may send (pause, resume, stop);
//! - [`ending`]: every way the stream ends, its close frame and its outcome;
//! - [`heartbeat`]: pings for a silent peer;
//! - [`messages`]: a chunk's text message, compressed by [`deflate`] when agreed;
//! - [`inflate`]: the client's compressed messages inflated under tungstenite;
//! - [`socket`]: the framing (tungstenite), its limits and the lingering close.
//!
//! [`run`] drives one connection from the stream's chunks until its [`Ending`], then closes
//! the connection as that ending requires. Nothing is taken from the generator while the
//! client has paused the stream. The loop is generic over its [`Socket`] (a `Sink` and
//! `Stream` of tungstenite messages), so the unit tests drive it with channels and paused
//! time, and the integration tests with a real socket.

mod conn;
mod deflate;
mod ending;
pub mod extension;
pub mod handshake;
mod heartbeat;
mod inflate;
mod messages;
mod socket;
#[cfg(test)]
mod tests;

use std::time::Duration;

use poem::OnUpgrade;
use tokio_tungstenite::{WebSocketStream, tungstenite::protocol::Role};
use tokio_util::sync::CancellationToken;

use self::{conn::Conn, messages::Messages};
pub use self::{
    deflate::Deflate,
    ending::Ending,
    inflate::Inflating,
    socket::{MAX_INCOMING, Socket, config},
};
use crate::streams::{Chunks, Encoding, Outcome};

/// How a WebSocket stream is run.
#[derive(Debug)]
pub struct Options {
    /// A peer silent this long is pinged; one that stays silent until the next tick is
    /// dropped. (A peer that reads nothing is ended by its socket's stall deadline, as on
    /// every transport.)
    pub ping: Duration,
    /// Cancelled when the server shuts down: the stream closes with 1001 at once.
    pub shutdown: CancellationToken,
    /// permessage-deflate, if it was agreed in the handshake.
    pub deflate: Option<Deflate>,
}

/// Streams `chunks` over the connection `upgrade` hands over once the `101` is written.
/// If the client left first, the stream ends there, counted as gone.
pub async fn serve(upgrade: OnUpgrade, chunks: Chunks, options: Options) {
    let upgraded = match upgrade.await {
        Ok(upgraded) => upgraded,
        Err(err) => {
            tracing::debug!(%err, "upgrade failed");
            return;
        }
    };
    let io = Inflating::new(upgraded, options.deflate.is_some());
    let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config())).await;
    run(socket, chunks, options).await;
}

/// Streams `chunks` over a WebSocket until the end, a `stop`, the peer leaving or breaking
/// the protocol, or server shutdown; then closes it with the right code.
///
/// The stream is counted and dropped (and the generator with it) as soon as it ends, before
/// the closing handshake, so the metrics never wait on a slow peer.
pub async fn run<S: Socket>(socket: S, mut chunks: Chunks, options: Options) -> Outcome {
    if options.deflate.is_some() {
        chunks.set_encoding(Encoding::Deflate);
    }
    let messages = Messages::new(options.deflate);
    let mut conn = Conn::new(socket, messages, options.ping, options.shutdown);
    let ending = conn.stream(&mut chunks).await;
    if let Some(outcome) = ending.outcome() {
        chunks.end(outcome);
    }
    let outcome = chunks.close();
    conn.close(ending).await;
    outcome
}
