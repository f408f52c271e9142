//! Our own HTTP/1.1 accept loop serving the poem endpoint over hyper.
//!
//! Why not `poem::Server`: measured here, it never notices a client that closes its
//! connection while a streaming body is idle (a paced stream stays open, its generator
//! alive, until the next write fails), whereas hyper's HTTP/1 connection does. Owning the
//! loop also lets us set `TCP_NODELAY` (paced chunks never wait on Nagle), back off when out
//! of file descriptors instead of spinning, and end connections gracefully on shutdown.

use std::{convert::Infallible, future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use poem::{
    Addr, Endpoint, EndpointExt, IntoEndpoint, Request,
    http::uri::Scheme,
    web::{LocalAddr, RemoteAddr},
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// How long to pause accepting after an error such as "too many open files".
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `ep` on `listener` until `signal` completes; then stops accepting, lets every
/// connection finish its current response, and waits for them at most `timeout`.
pub async fn serve(
    listener: TcpListener,
    ep: impl IntoEndpoint<Endpoint: 'static>,
    signal: impl Future<Output = ()>,
    timeout: Duration,
) -> io::Result<()> {
    let ep = Arc::new(ep.into_endpoint().map_to_response());
    let local = listener.local_addr()?;
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut signal => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                connections.spawn(connection(stream, local, peer, ep.clone(), stop.clone()));
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
    drop(listener);
    stop.cancel();
    connections.close();
    if tokio::time::timeout(timeout, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "shutdown timeout: closing remaining connections"
        );
    }
    Ok(())
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

/// Serves one connection (with WebSocket upgrades) until it ends or shutdown asks it to.
async fn connection<E>(
    stream: TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
    ep: Arc<E>,
    stop: CancellationToken,
) where
    E: Endpoint<Output = poem::Response> + 'static,
{
    // Coalescing happens in the transports; a small write must then go out at once.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, %peer, "cannot set TCP_NODELAY");
    }
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let ep = ep.clone();
        async move {
            let req = Request::from((
                req,
                LocalAddr(Addr::SocketAddr(local)),
                RemoteAddr(Addr::SocketAddr(peer)),
                Scheme::HTTP,
            ));
            // Boxed on purpose: hyper keeps one box for the service future for a connection's
            // whole life, sized for that future, and poem's endpoint future is ~5.8 KiB (DHAT).
            // Boxed here, it lives only until the response head is ready, and an idle
            // streaming connection keeps a few bytes instead.
            let resp = Box::pin(ep.get_response(req)).await;
            Ok::<_, Infallible>(hyper::Response::from(resp))
        }
    });
    let conn = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stop.cancelled() => {
            // Finish the response in flight (streams end at once on shutdown), then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%err, %peer, "connection ended with an error");
    }
}
