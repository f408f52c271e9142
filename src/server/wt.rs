//! The WebTransport endpoint: HTTP/3 over UDP. Its accept loop is the UDP twin of
//! [`serve`](super::serve): each session's handshake is held to the header timeout, and each
//! session is one of the shutdown's tasks. It also renews the server's own certificate while
//! it runs (new sessions get the new one).

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{task::JoinHandle, time};
use wtransport::{
    ServerConfig, config::QuicTransportConfig, endpoint::SessionRequest, endpoint::endpoint_side,
    quinn::VarInt,
};

use crate::{certs::Certificates, shutdown::Shutdown};

/// How often an idle session sends a QUIC keep-alive: well within the idle timeout of both
/// sides (quinn's and browsers' are 30 s), so that a paced stream's pauses never end it,
/// while a client that vanished is still noticed when its connection times out.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// How long a shut-down endpoint waits for its connections' closes to be sent.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A bound WebTransport endpoint, not yet accepting.
pub struct Endpoint {
    endpoint: Arc<wtransport::Endpoint<endpoint_side::Server>>,
    addr: SocketAddr,
    certs: Certificates,
}

impl Endpoint {
    /// Binds UDP `addr`, presenting `certs`.
    pub fn bind(addr: SocketAddr, certs: Certificates) -> io::Result<Self> {
        let endpoint = wtransport::Endpoint::server(config(addr, &certs)?)?;
        let addr = endpoint.local_addr()?;
        Ok(Self {
            endpoint: Arc::new(endpoint),
            addr,
            certs,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificate it presents.
    pub fn certs(&self) -> &Certificates {
        &self.certs
    }

    /// Accepts sessions until `shutdown` begins, each handshake within `handshake`, each
    /// session handed to `session` in a task of the shutdown's. Returns what closes the
    /// endpoint once those tasks are done.
    pub fn serve<F, Fut>(self, session: F, shutdown: Shutdown, handshake: Duration) -> Serving
    where
        F: Fn(SessionRequest) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let endpoint = self.endpoint.clone();
        let accepting = tokio::spawn(self.accept(session, shutdown, handshake));
        Serving {
            endpoint,
            accepting,
        }
    }

    async fn accept<F, Fut>(self, session: F, shutdown: Shutdown, handshake: Duration)
    where
        F: Fn(SessionRequest) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let renew_every = self.certs.renew_every();
        // Without renewals the timer is disabled; its deadline only has to be valid.
        let mut renewal = time::Instant::now() + renew_every.unwrap_or(KEEP_ALIVE);
        loop {
            let incoming = tokio::select! {
                biased;
                () = shutdown.begun() => return,
                () = time::sleep_until(renewal), if renew_every.is_some() => {
                    renewal += renew_every.unwrap_or_default();
                    self.renew();
                    continue;
                }
                incoming = self.endpoint.accept() => incoming,
            };
            let session = session.clone();
            let done = shutdown.clone();
            shutdown.spawn(async move {
                match shutdown_or(&done, time::timeout(handshake, incoming)).await {
                    Some(Ok(Ok(request))) => session(request).await,
                    Some(Ok(Err(err))) => tracing::debug!(%err, "webtransport handshake failed"),
                    Some(Err(_)) => tracing::debug!("webtransport handshake timed out"),
                    None => {}
                }
            });
        }
    }

    /// Makes a new certificate the one new sessions get.
    fn renew(&self) {
        let renewed = self
            .certs
            .renew()
            .and_then(|()| config(self.addr, &self.certs))
            .and_then(|config| self.endpoint.reload_config(config, false));
        match renewed {
            Ok(()) => tracing::info!("webtransport certificate renewed"),
            Err(err) => tracing::error!(%err, "cannot renew the webtransport certificate"),
        }
    }
}

/// Waits for `op`, unless shutdown begins first (`None`).
async fn shutdown_or<F: Future>(shutdown: &Shutdown, op: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        () = shutdown.begun() => None,
        done = op => Some(done),
    }
}

/// The endpoint, accepting.
pub struct Serving {
    endpoint: Arc<wtransport::Endpoint<endpoint_side::Server>>,
    accepting: JoinHandle<()>,
}

impl Serving {
    /// Closes the endpoint, once shutdown has begun and the sessions have ended (or were given
    /// up on): what is left is closed, and the closes are sent before this returns.
    pub async fn close(self) {
        let _ = self.accepting.await;
        self.endpoint.close(
            crate::transport::wt::Code::GoingAway.session(),
            b"server shutting down",
        );
        let _ = time::timeout(CLOSE_WAIT, self.endpoint.wait_idle()).await;
    }
}

/// How many streams of each kind a client may hold open at once. A session uses one
/// bidirectional stream (its CONNECT) and four unidirectional ones (HTTP/3's control and two
/// QPACK streams, and the control lines); quinn's default of 100 each costs state for every
/// stream a client may open, in every connection, from its start.
const MAX_BIDI_STREAMS: u32 = 1;
const MAX_UNI_STREAMS: u32 = 8;

/// The endpoint's configuration at `addr` with the current certificate.
fn config(addr: SocketAddr, certs: &Certificates) -> io::Result<ServerConfig> {
    let mut transport = QuicTransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_BIDI_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS))
        .keep_alive_interval(Some(KEEP_ALIVE));
    Ok(ServerConfig::builder()
        .with_bind_address(addr)
        .with_custom_tls_and_transport(certs.tls_config()?, transport)
        .build())
}
