//! Our own HTTP/1.1 accept loop serving the poem endpoint over hyper.
//!
//! Why not `poem::Server`: measured here, it never notices a client that closes its
//! connection while a streaming body is idle (a paced stream stays open, its generator
//! alive, until the next write fails), whereas hyper's HTTP/1 connection does. Owning the
//! loop also lets us set `TCP_NODELAY` (paced chunks never wait on Nagle), hold every
//! connection to its deadlines (`deadlines.rs`), bound what hyper and the kernel buffer for a
//! client that reads nothing, back off when out of file descriptors instead of spinning, and end
//! connections gracefully on shutdown.

mod deadlines;
pub mod wt;

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use hyper::{
    StatusCode,
    body::{Body, Frame, Incoming, SizeHint},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use poem::{
    Addr, Endpoint, EndpointExt, IntoEndpoint, Request,
    http::uri::Scheme,
    web::{LocalAddr, RemoteAddr},
};
use tokio::net::{TcpListener, TcpStream};

use self::deadlines::Deadlines;
pub use self::deadlines::Expired;

/// The body of poem's responses, as hyper gets them.
type BoxBody = http_body_util::combinators::BoxBody<bytes::Bytes, io::Error>;
use crate::{config::Timeouts, connection::Activity, shutdown::Shutdown};

/// How long to pause accepting after an error such as "too many open files".
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The most a connection buffers in hyper: the request head it reads, and the response bytes
/// queued for writing (hyper asks the body for another frame only below it, and writes what
/// it holds in one `writev`). hyper's default is what every client that stops reading would
/// pin down; less means more, smaller writes for a fast one (BENCHMARKS.md, "Stalled
/// clients" has the balance).
const MAX_BUF_SIZE: usize = 80 * 1024;

/// The largest request head (request line, headers and the blank line) served: a larger
/// one gets 431, however TCP splits it. (hyper's buffer limit alone is checked only before
/// each read, so a head that arrives in one burst could pass it by up to one read.)
pub const MAX_HEAD_SIZE: usize = MAX_BUF_SIZE;

/// The most bytes the kernel holds unsent for a connection (`TCP_NOTSENT_LOWAT`; what is in
/// flight is still governed by TCP's windows). Without it a socket's send buffer grows to
/// megabytes, which a client that reads nothing holds for the stall timeout, and which the
/// client must drain by a third before the server sees any progress (BENCHMARKS.md,
/// "Stalled clients").
#[cfg(any(target_os = "linux", target_os = "android"))]
const NOTSENT_LOWAT: u32 = 128 * 1024;

/// Serves `ep` on `listener`, every connection held to `timeouts`, until `shutdown` begins;
/// then stops accepting. Each connection finishes the response in flight and closes; it is
/// one of `shutdown`'s tasks, which [`Shutdown::finish`] waits for.
pub async fn serve(
    listener: TcpListener,
    ep: impl IntoEndpoint<Endpoint: 'static>,
    shutdown: Shutdown,
    timeouts: Timeouts,
) -> io::Result<()> {
    let ep = Arc::new(ep.into_endpoint().map_to_response());
    let local = listener.local_addr()?;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.begun() => return Ok(()),
        };
        match accepted {
            Ok((stream, peer)) => {
                let conn = connection(stream, local, peer, ep.clone(), shutdown.clone(), timeouts);
                shutdown.spawn(conn);
            }
            Err(err) if is_transient(&err) => {}
            Err(err) => {
                // Out of file descriptors or memory: pause instead of retrying in a hot loop;
                // the open streams keep flowing meanwhile.
                tracing::warn!(%err, "accept failed; backing off");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Errors that concern one failed connection, not the listener.
fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Serves one connection (with WebSocket upgrades) until it ends, a deadline passes, or
/// shutdown asks it to.
async fn connection<E>(
    stream: TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
    ep: Arc<E>,
    shutdown: Shutdown,
    timeouts: Timeouts,
) where
    E: Endpoint<Output = poem::Response> + 'static,
{
    tune(&stream, peer);
    let activity = Arc::new(Activity::default());
    let io = Deadlines::new(stream, activity.clone(), timeouts);
    let service =
        service_fn(move |req| serve_request(req, ep.clone(), activity.clone(), local, peer));
    let conn = http1::Builder::new()
        .max_buf_size(MAX_BUF_SIZE)
        .max_header_size(MAX_HEAD_SIZE)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.begun() => {
            // Finish the response in flight (streams end at once on shutdown), then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%err, %peer, "connection ended with an error");
    }
}

/// Sets the socket options every connection gets.
fn tune(stream: &TcpStream, peer: SocketAddr) {
    // Coalescing happens in the transports; a small write must then go out at once.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, %peer, "cannot set TCP_NODELAY");
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(err) = socket2::SockRef::from(stream).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
        tracing::debug!(%err, %peer, "cannot set TCP_NOTSENT_LOWAT");
    }
}

/// Answers one request of a connection with the endpoint, its response body watched so that
/// the connection's deadlines know when the response has ended.
async fn serve_request<E>(
    mut req: hyper::Request<Incoming>,
    ep: Arc<E>,
    activity: Arc<Activity>,
    local: SocketAddr,
    peer: SocketAddr,
) -> Result<hyper::Response<Watched<BoxBody>>, Infallible>
where
    E: Endpoint<Output = poem::Response> + 'static,
{
    activity.request_began();
    // A stream written to this connection reads it to tell a stalled client from one that
    // left.
    req.extensions_mut().insert(activity.clone());
    let req = Request::from((
        req,
        LocalAddr(Addr::SocketAddr(local)),
        RemoteAddr(Addr::SocketAddr(peer)),
        Scheme::HTTP,
    ));
    // Boxed on purpose: hyper keeps one box for the service future for a connection's whole
    // life, sized for that future, and poem's endpoint future is several KiB. Boxed here, it
    // lives only until the response head is ready, and an idle streaming connection keeps a
    // few bytes instead (BENCHMARKS.md, "Memory per connection").
    let resp = hyper::Response::from(Box::pin(ep.get_response(req)).await);
    let activity = if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        // The connection is the WebSocket's now; its body is the empty 101's.
        activity.upgraded();
        None
    } else {
        Some(activity)
    };
    Ok(resp.map(|body| Watched { body, activity }))
}

/// A response body that tells the connection's deadlines when the response has ended.
struct Watched<B> {
    body: B,
    activity: Option<Arc<Activity>>,
}

impl<B: Body + Unpin> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B> Drop for Watched<B> {
    /// hyper drops a body once it is written, or when the connection ends.
    fn drop(&mut self) {
        if let Some(activity) = &self.activity {
            activity.response_ended();
        }
    }
}
