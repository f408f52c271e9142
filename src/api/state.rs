//! [`State`]: what every operation shares, and the one way an operation opens a stream.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
};

use poem::{Body, Request};

use super::{
    errors::StreamError,
    streamed::{Media, Streamed},
};
use crate::{
    certs::Certificates,
    client::{Client, TrustedProxies},
    config::{Compression, Config},
    connection::Activity,
    generator::StreamParams,
    shutdown::Shutdown,
    streams::{Chunks, Encoding, Limits, Peer, Recipient, Streams, Transport},
    transport::{
        Encoder, body,
        compress::{self, Codec},
    },
};

/// Marks a request that arrived as HEAD. HEAD is answered by the GET operation (the app's
/// outer middleware rewrites the method and sets this marker), and the body is dropped
/// unread: a stream operation that sees the marker answers with headers only instead of
/// opening, and counting, a stream nobody reads.
#[derive(Debug, Clone, Copy)]
pub struct HeadRequest;

/// What the operations share: the open streams and the configuration. Cloning is one
/// reference count (poem-openapi clones an operation's API value for each request).
#[derive(Clone)]
pub struct State(Arc<Parts>);

struct Parts {
    streams: Streams,
    config: Config,
    proxies: TrustedProxies,
    webtransport: Option<WebTransportSite>,
}

/// Where WebTransport sessions are served, and with which certificate.
#[derive(Clone)]
pub struct WebTransportSite {
    /// The UDP port.
    pub port: u16,
    /// The certificate new sessions are accepted with.
    pub certs: Certificates,
}

impl State {
    /// State for a server with `config`, serving WebTransport as `webtransport` says.
    pub fn new(config: Config, webtransport: Option<WebTransportSite>) -> Self {
        let limits = Limits {
            streams: config.max_streams,
            per_client: config.max_streams_per_client,
        };
        Self(Arc::new(Parts {
            streams: Streams::new(limits, Shutdown::default(), Default::default()),
            proxies: TrustedProxies::new(config.trusted_proxies.iter().copied()),
            config,
            webtransport,
        }))
    }

    /// Where WebTransport sessions are served, if they are.
    pub fn webtransport(&self) -> Option<&WebTransportSite> {
        self.0.webtransport.as_ref()
    }

    /// The open streams: limits, shutdown, metrics.
    pub fn streams(&self) -> &Streams {
        &self.0.streams
    }

    /// The server's configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The client `req` comes from.
    pub fn client<'a>(&self, req: &'a Request) -> Client<'a> {
        let peer = req
            .remote_addr()
            .as_socket_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), SocketAddr::ip);
        self.0.proxies.client(peer, req.headers())
    }

    /// Opens a `transport` stream of `params` for `req`, refused when the client's share or
    /// the server's limit is taken.
    pub fn open(
        &self,
        transport: Transport,
        params: StreamParams,
        req: &Request,
    ) -> Result<Chunks, StreamError> {
        let to = Recipient {
            key: self.client(req).key(),
            peer: Peer(req.remote_addr().as_socket_addr().copied()),
            // Set by the server for each request: it tells the stream if its client stalled.
            connection: req.extensions().get::<Arc<Activity>>().cloned(),
        };
        Ok(self.0.streams.open(transport, params, to)?)
    }

    /// The answer of an HTTP `transport` stream of `params` for `req`, in media type `M`:
    /// the body in `encoder`'s wire format, compressed as the request asks (unless
    /// compression is off). A HEAD request gets what a GET would be told, without opening or
    /// counting anything.
    pub fn stream<M: Media>(
        &self,
        transport: Transport,
        params: StreamParams,
        req: &Request,
        encoder: impl Encoder,
    ) -> Result<Streamed<M>, StreamError> {
        let encoding = match self.0.config.compression {
            Compression::On => compress::negotiate(req.headers()),
            Compression::Off => Encoding::Identity,
        };
        if req.extensions().get::<HeadRequest>().is_some() {
            self.0.streams.check(self.client(req).key())?;
            return Ok(Streamed::new(Body::empty(), encoding));
        }
        let codec = Codec::new(encoding);
        let encoding = codec.encoding();
        let body = body::body(self.open(transport, params, req)?, encoder, codec);
        Ok(Streamed::new(body, encoding))
    }
}
