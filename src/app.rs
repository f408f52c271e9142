//! The application: routes (API, page, docs, spec), JSON errors, binding and running.

use std::{future::Future, io, net::SocketAddr};

use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route,
    endpoint::BoxEndpoint,
    error::MethodNotAllowedError,
    http::{HeaderValue, Method, StatusCode, Version, header},
    web::Json,
};
use rust_embed::RustEmbed;
use tokio::net::{TcpListener, TcpSocket};

use crate::{
    api::{self, HeadRequest, State, WebTransportSite},
    assets::{Document, Files},
    certs::Certificates,
    config::Compression,
    config::Config,
    docs::Docs,
    server,
    streams::{Streams, Transport},
};

/// The live page, the docs and their assets, compiled into the binary.
#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

/// Every route of the server over `state`, with every error answered as JSON.
pub fn routes(state: State) -> impl Endpoint + 'static {
    let compress = state.config().compression == Compression::On;
    let rest = Route::new()
        .at("/", Get(Files::<Assets>::one("index.html", compress)))
        .nest("/static", Get(Files::<Assets>::all(compress)))
        .at(
            "/openapi.json",
            Get(Document::json(api::document(), compress)),
        )
        .at(
            "/openapi-3.0.json",
            Get(Document::json(api::document_3_0(), compress)),
        )
        .nest("/docs", Get(Docs::<Assets>::new(compress)));
    Split {
        operations: api::operations(),
        state,
        rest,
    }
    .around(json_errors)
}

/// The API's operations, each a GET at an exact path, go straight to their endpoint with
/// the [`State`] they read; any other path goes to `rest`. (Through the OpenAPI service's
/// own endpoint, each stream request would pass a router, a method router and a query
/// parser, and through an outer `Route` a router more: a measurable part of a short
/// stream's work; BENCHMARKS.md, "What each change bought".)
struct Split<R> {
    operations: Vec<(String, BoxEndpoint<'static>)>,
    state: State,
    rest: R,
}

impl<R: Endpoint> Endpoint for Split<R> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let path = req.uri().path();
        let Some((_, operation)) = self.operations.iter().find(|(at, _)| at == path) else {
            return self.rest.call(req).await.map(IntoResponse::into_response);
        };
        if req.method() != Method::GET {
            return Err(MethodNotAllowedError.into());
        }
        req.extensions_mut().insert(self.state.clone());
        operation.call(req).await
    }
}

/// A resource read with GET (and HEAD, which arrives here as GET): any other method is a 405.
struct Get<E>(E);

impl<E: Endpoint> Endpoint for Get<E> {
    type Output = E::Output;

    async fn call(&self, req: Request) -> poem::Result<E::Output> {
        if req.method() != Method::GET {
            return Err(MethodNotAllowedError.into());
        }
        self.0.call(req).await
    }
}

/// Turns every error (unknown route, wrong method, unparsable parameter) into a JSON
/// `{"error": …}` body with the error's status. Typed errors already carry their body.
///
/// Also refuses a request whose `Host` header breaks RFC 9112 §3.2, and answers HEAD as RFC
/// 9110 asks wherever GET is served: as a GET, marked (see [`HeadRequest`]) so that a stream
/// route opens no stream. hyper knows the request was a HEAD: it sends the headers,
/// `Content-Length` included, and leaves the body out.
async fn json_errors<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    if let Some(problem) = host_problem(&req) {
        let body = Json(serde_json::json!({ "error": problem }));
        return Ok(body.with_status(StatusCode::BAD_REQUEST).into_response());
    }
    // Both clones are cheap (the URI shares its bytes): no allocation on the success path.
    let method = req.method().clone();
    let uri = req.uri().clone();
    if method == Method::HEAD {
        req.set_method(Method::GET);
        req.extensions_mut().insert(HeadRequest);
    }
    let err = match next.call(req).await {
        Ok(resp) => return Ok(resp.into_response()),
        Err(err) if err.is_from_response() => return Ok(err.into_response()),
        Err(err) => err,
    };
    let path = uri.path();
    let status = err.status();
    let message = match status {
        StatusCode::NOT_FOUND => format!("no route for {method} {path}"),
        StatusCode::METHOD_NOT_ALLOWED => format!("method {method} is not allowed on {path}"),
        s if s.is_server_error() => {
            tracing::error!(%method, %path, error = %err, "request failed");
            "internal error".to_owned()
        }
        _ => err.to_string(),
    };
    let mut resp = Json(serde_json::json!({ "error": message }))
        .with_status(status)
        .into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        // Every route of this server is a GET (HEAD is answered from it), as RFC 9110 says
        // a 405 must tell.
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    Ok(resp)
}

/// What is wrong with the request's `Host` header, if anything: an HTTP/1.1 request must
/// carry exactly one, and no request two (RFC 9112 §3.2).
fn host_problem(req: &Request) -> Option<&'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Some("a request must not carry more than one `Host` header"),
        (None, _) if req.version() == Version::HTTP_11 => {
            Some("an HTTP/1.1 request must carry a `Host` header")
        }
        _ => None,
    }
}

/// Pending connections the kernel may queue (it caps this at `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

/// A bound server, not yet running: tests bind port 0 and read the port.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    webtransport: Option<server::wt::Endpoint>,
    state: State,
}

impl Application {
    /// Binds `config.addr` (TCP), and the WebTransport address (UDP) unless it is off: by
    /// default the same IP address and port number.
    pub async fn bind(config: Config) -> io::Result<Self> {
        let socket = match config.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(config.addr)?;
        // tokio's default backlog overflows when thousands of clients connect at once, and a
        // client that overflows it waits for TCP to retry its SYN.
        let listener = socket.listen(LISTEN_BACKLOG)?;
        let addr = listener.local_addr()?;
        let webtransport = match config.webtransport.addr(addr) {
            Some(at) => {
                let certs = Certificates::load(&config)?;
                let endpoint = server::wt::Endpoint::bind(at, certs).map_err(|err| {
                    io::Error::new(err.kind(), format!("webtransport on UDP {at}: {err}"))
                })?;
                Some(endpoint)
            }
            None => None,
        };
        let site = webtransport.as_ref().map(|endpoint| WebTransportSite {
            port: endpoint.local_addr().port(),
            certs: endpoint.certs().clone(),
        });
        Ok(Self {
            listener,
            addr,
            webtransport,
            state: State::new(config, site),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WebTransport address (UDP) actually bound, if it is served.
    pub fn webtransport_addr(&self) -> Option<SocketAddr> {
        self.webtransport
            .as_ref()
            .map(server::wt::Endpoint::local_addr)
    }

    /// The server's open streams (limit, shutdown token, metrics).
    pub fn streams(&self) -> &Streams {
        self.state.streams()
    }

    /// Serves until `signal` completes, then shuts down gracefully (see [`crate::shutdown`]):
    /// everything is told to end at once, and waited for at most the shutdown timeout.
    pub async fn run(self, signal: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let shutdown = self.state.streams().shutdown().clone();
        let deadline = self.state.config().shutdown_timeout();
        let timeouts = self.state.config().timeouts();
        log_urls(self.addr, self.webtransport_addr());
        let state = self.state.clone();
        let sessions = self.webtransport.map(|endpoint| {
            let open = move |request| api::webtransport_session(state.clone(), request);
            endpoint.serve(open, shutdown.clone(), timeouts.header)
        });
        let serving = server::serve(
            self.listener,
            routes(self.state),
            shutdown.clone(),
            timeouts,
        );
        tokio::select! {
            // Only when the listener fails: the server stops accepting when shutdown begins.
            served = serving => served?,
            () = signal => tracing::info!("shutting down: ending open streams"),
        }
        shutdown.begin();
        let unfinished = shutdown.finish(deadline).await;
        if unfinished > 0 {
            tracing::warn!(
                unfinished,
                "shutdown timeout: dropping connections still open"
            );
        }
        if let Some(sessions) = sessions {
            sessions.close().await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Logs where everything is served at `addr` (and WebTransport at `wt`): the page, the docs,
/// each stream, the spec.
fn log_urls(addr: SocketAddr, wt: Option<SocketAddr>) {
    tracing::info!("live page:     http://{addr}/");
    tracing::info!("Swagger UI:    http://{addr}/docs");
    for transport in Transport::ALL {
        let (name, scheme, path) = (transport.as_str(), transport.scheme(), transport.path());
        let at = match (transport.over_tcp(), wt) {
            (true, _) => addr,
            (false, Some(wt)) => wt,
            (false, None) => {
                tracing::info!("{name:<5} stream:  off");
                continue;
            }
        };
        tracing::info!("{name:<5} stream:  {scheme}://{at}{path}?count=10&interval_ms=300");
    }
    tracing::info!("OpenAPI:       http://{addr}/openapi.json");
    tracing::info!(%addr, "listening");
}
