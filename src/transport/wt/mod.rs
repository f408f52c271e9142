//! WebTransport (HTTP/3): the chunks as JSON lines on the first unidirectional stream the
//! server opens, control lines on the one the client may open, and every way a session
//! ends.
//!
//! One file a job:
//! - [`session`]: the loop, one `select!` whose arms each call one part, and the close;
//! - [`peer`]: what the client sends: its control lines
//!   ([`control`](crate::transport::control), the WebSocket's), and its leaving;
//! - [`ending`]: every way a session ends, its code and its outcome.
//!
//! The session itself is accepted, or refused with a status, by the API
//! ([`crate::api`]); the UDP endpoint is the server's ([`crate::server::wt`]).

mod ending;
mod peer;
mod session;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wtransport::Connection;

pub use self::ending::{Code, Ending};
use self::session::Session;
use crate::streams::{Chunks, Outcome};

/// The longest control line read, its line feed aside (as a WebSocket's messages).
pub const MAX_CONTROL_LINE: usize = 4096;

/// How long a client that is still there has to close the session itself after its chunk
/// stream was reset (the server's going away, a control line that breaks the protocol), or
/// after shutdown began, before the server closes it.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How a session is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// A client that accepts no bytes this long is stalled.
    pub stall: Duration,
    /// How long a client that has its whole chunk stream may keep the session before the
    /// server closes it: the idle timeout of a kept-alive HTTP connection.
    pub idle: Duration,
    /// Cancelled when the server shuts down: the session closes as going away at once.
    pub shutdown: CancellationToken,
}

/// Streams `chunks` over the session on `connection` until the end, a `stop`, the client
/// leaving, stalling or breaking the control protocol, or server shutdown; then closes it
/// with the right code.
///
/// The stream is counted and dropped (and the generator with it) as soon as it ends, before
/// the session closes, so the metrics never wait on a slow client. Its room under the limits
/// is held until the session closes: a finished session its client keeps open (up to the
/// idle timeout) holds a connection, and counts against the limits as a stream would.
pub async fn serve(connection: Connection, mut chunks: Chunks, options: Options) -> Outcome {
    let (session, ending) = match Session::open(connection.clone(), options.clone()).await {
        Ok(mut session) => {
            let ending = session.stream(&mut chunks).await;
            (Ok(session), ending)
        }
        Err((peer, ending)) => (Err(peer), ending),
    };
    if let Some(outcome) = ending.outcome() {
        chunks.end(outcome);
    }
    let (outcome, room) = chunks.close_keeping_room();
    match session {
        Ok(session) => session.close(ending).await,
        Err(mut peer) => session::close(&connection, &mut peer, ending, &options).await,
    }
    drop(room);
    outcome
}
