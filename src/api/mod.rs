//! The poem-openapi service: operations, parameters, validation, JSON errors and the spec.
//!
//! One `#[OpenApi]` type per concern (`text`, `sse`, `ws`, `jsonl`, `ops`), joined into one
//! service.
//! poem-openapi has no extractor for a struct of query parameters, so each stream operation
//! declares `count`, `interval_ms` and `start` itself (documented ranges, checked by the
//! framework) and hands them to [`StreamParams::new`], the one validation of the contract.

mod jsonl;
mod ops;
mod spec;
mod sse;
mod text;
mod ws;

use std::{
    fmt,
    marker::PhantomData,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
};

use poem::{
    Body, IntoResponse, Request, Response,
    http::{HeaderValue, header},
    web::RemoteAddr,
};

use poem_openapi::{
    ApiResponse, Object, OpenApi, OpenApiService, Tags,
    payload::{Json, Payload},
    registry::{MetaSchemaRef, Registry},
    types::Example,
};

use futures_util::Stream;

use crate::{
    client::{Client, TrustedProxies},
    config::Config,
    generator::{self, ChunkRange, ParamsError, StreamParams},
    server::Activity,
    shutdown::Shutdown,
    streams::{Limits, Refusal, StreamGuard, Streams},
    transport::{self, Encoder, Transport},
};

/// What the operations share: the open streams and the configuration.
#[derive(Clone)]
pub struct Shared {
    /// Limits, shutdown token, task tracker and metrics.
    pub streams: Streams,
    /// The server's configuration.
    pub config: Arc<Config>,
    /// The proxies whose forwarded headers are believed.
    pub proxies: Arc<TrustedProxies>,
}

impl Shared {
    /// State for a server with `config`.
    pub fn new(config: Config) -> Self {
        let limits = Limits {
            streams: config.max_streams,
            per_client: config.max_streams_per_client,
        };
        Self {
            streams: Streams::new(limits, Shutdown::default(), Default::default()),
            proxies: Arc::new(TrustedProxies::new(config.trusted_proxies.iter().copied())),
            config: Arc::new(config),
        }
    }

    /// The client `req` comes from.
    pub fn client<'a>(&self, req: &'a Request) -> Client<'a> {
        let peer = req
            .remote_addr()
            .as_socket_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), SocketAddr::ip);
        self.proxies.client(peer, req.headers())
    }

    /// Opens a `transport` stream for `req`: the generator's chunks, and the guard that
    /// accounts for the stream (moved into whatever sends it). Refused when the client's
    /// share or the server's limit is taken. A HEAD request gets `None`: what a GET would be
    /// told, without opening or counting anything.
    pub fn open(
        &self,
        transport: Transport,
        params: StreamParams,
        req: &Request,
    ) -> Result<Option<(impl Stream<Item = ChunkRange> + Send + 'static, StreamGuard)>, StreamError>
    {
        let share = self.client(req).share();
        if req.extensions().get::<HeadRequest>().is_some() {
            self.streams.check(share)?;
            return Ok(None);
        }
        // Set by the server for each request: a stream written to its connection's socket
        // learns from it that the client stalled.
        let connection = req.extensions().get::<Arc<Activity>>().cloned();
        let peer = Peer(req.remote_addr());
        let guard = self
            .streams
            .open(transport, &params, share, connection, peer)?;
        let chunks = generator::chunks(params, self.streams.shutdown().token().clone());
        Ok(Some((chunks, guard)))
    }

    /// The response body of a `transport` stream for `req`, in `encoder`'s wire format (see
    /// [`Shared::open`]): empty for a HEAD request.
    pub fn body(
        &self,
        transport: Transport,
        params: StreamParams,
        req: &Request,
        encoder: impl Encoder,
    ) -> Result<Body, StreamError> {
        Ok(match self.open(transport, params, req)? {
            Some((chunks, guard)) => transport::frames::body(chunks, encoder, &params, guard),
            None => Body::empty(),
        })
    }
}

/// A client's address in the logs, as poem writes it (`socket://127.0.0.1:4242`), but an
/// IPv4 address without `core::fmt`'s machinery: it is in every stream's span.
pub struct Peer<'a>(pub &'a RemoteAddr);

impl fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(SocketAddr::V4(addr)) = self.0.as_socket_addr() else {
            return self.0.fmt(f);
        };
        let mut digits = itoa::Buffer::new();
        f.write_str("socket://")?;
        for (i, octet) in addr.ip().octets().into_iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(digits.format(octet))?;
        }
        f.write_str(":")?;
        f.write_str(digits.format(addr.port()))
    }
}

/// Operation groups in Swagger UI.
#[derive(Tags)]
enum Tag {
    /// The same lazy generator of chunks, streamed four ways.
    Stream,
    /// Health and metrics.
    Operations,
}

/// An error: what is wrong, in words meant for the client.
#[derive(Debug, Object)]
pub struct ErrorBody {
    /// What is wrong, naming the parameter or header at fault.
    pub error: String,
}

/// One chunk as JSON (an SSE `data:` line, a WebSocket text frame). Chunk *i* is a pure
/// function of *i*: `{"index": i, "text": "Data Chunk i"}`.
#[derive(Debug, Object)]
#[oai(rename = "Chunk", example)]
pub struct ChunkSchema {
    /// Position of the chunk in the stream, from 0; the SSE event id.
    pub index: u64,
    /// `Data Chunk {index}`.
    pub text: String,
}

impl Example for ChunkSchema {
    fn example() -> Self {
        Self {
            index: 0,
            text: "Data Chunk 0".to_owned(),
        }
    }
}

/// Seconds a client refused for lack of room is told to wait.
const RETRY_AFTER_SECS: u64 = 1;

/// Why a stream was not started.
#[derive(Debug, ApiResponse)]
pub enum StreamError {
    /// A parameter or header is malformed or out of range; `error` names it.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// This client already holds its share of streams (`--max-streams-per-client`, over all
    /// transports): close one, or retry after `Retry-After` seconds.
    #[oai(status = 429)]
    TooMany(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// Too many streams are open: retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Busy(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl StreamError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(Json(ErrorBody {
            error: message.into(),
        }))
    }
}

impl From<ParamsError> for StreamError {
    fn from(err: ParamsError) -> Self {
        Self::bad_request(err.to_string())
    }
}

impl From<Refusal> for StreamError {
    fn from(refusal: Refusal) -> Self {
        let body = Json(ErrorBody {
            error: refusal.to_string(),
        });
        match refusal {
            Refusal::Busy { .. } => Self::Busy(body, RETRY_AFTER_SECS),
            Refusal::FairShare { .. } => Self::TooMany(body, RETRY_AFTER_SECS),
        }
    }
}

/// The validated parameters of a stream operation.
fn params(count: u64, interval_ms: u64, start: u64) -> Result<StreamParams, StreamError> {
    Ok(StreamParams::new(count, interval_ms, start)?)
}

/// Marks a request that arrived as HEAD. HEAD is answered by the GET operation (the app's
/// outer middleware rewrites the method and sets this marker), and the body is dropped
/// unread: a stream operation that sees the marker answers with headers only instead of
/// opening, and counting, a stream nobody reads.
#[derive(Debug, Clone, Copy)]
pub struct HeadRequest;

/// A stream operation's body, written as the generator makes it. `M` is the media type:
/// a type with no values whose [`Payload`] impl is what the spec says of the body.
pub struct Streamed<M>(Body, PhantomData<fn() -> M>);

impl<M> Streamed<M> {
    /// `body`, in media type `M`.
    pub fn new(body: Body) -> Self {
        Self(body, PhantomData)
    }
}

impl<M: Payload> Payload for Streamed<M> {
    const CONTENT_TYPE: &'static str = M::CONTENT_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        M::schema_ref()
    }

    fn register(registry: &mut Registry) {
        M::register(registry);
    }
}

impl<M: Payload> IntoResponse for Streamed<M> {
    /// With the headers every streamed body carries: no caching, and no buffering by
    /// proxies (nginx). Static values: nothing to parse or allocate per stream.
    fn into_response(self) -> Response {
        Response::builder()
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static(M::CONTENT_TYPE),
            )
            .header(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))
            .header("x-accel-buffering", HeaderValue::from_static("no"))
            .body(self.0)
    }
}

/// Default of the `count` parameter.
fn default_count() -> u64 {
    crate::generator::DEFAULT_COUNT
}

/// The service: every operation, ready to nest under `/`.
pub type Service = OpenApiService<Apis, ()>;

/// Every operation group of the API.
type Apis = (
    text::TextApi,
    sse::SseApi,
    ws::WsApi,
    jsonl::JsonlApi,
    ops::OpsApi,
);

/// The paths of the API's operations, from its own metadata. They are exact: no operation
/// has a path parameter (a test checks it).
pub fn paths() -> Vec<String> {
    <Apis as OpenApi>::meta()
        .into_iter()
        .flat_map(|api| api.paths)
        .map(|path| path.path)
        .collect()
}

/// The OpenAPI service over `shared`.
pub fn service(shared: Shared) -> Service {
    OpenApiService::new(
        (
            text::TextApi(shared.clone()),
            sse::SseApi(shared.clone()),
            ws::WsApi(shared.clone()),
            jsonl::JsonlApi(shared.clone()),
            ops::OpsApi(shared),
        ),
        "chunkstream",
        env!("CARGO_PKG_VERSION"),
    )
    .description(include_str!("description.md"))
}

/// The OpenAPI 3.2 document, exactly as `GET /openapi.json` serves it and `openapi.json`
/// holds it: [`document_3_0`] with each item of every stream described (see [`spec`]).
pub fn document() -> String {
    let doc: serde_json::Value =
        serde_json::from_str(&document_3_0()).expect("poem-openapi writes its document as JSON");
    let mut doc =
        serde_json::to_string_pretty(&spec::to_3_2(doc)).expect("a JSON value serializes");
    doc.push('\n');
    doc
}

/// The OpenAPI 3.0 document as poem-openapi writes it, for tools that read only 3.0
/// (`GET /openapi-3.0.json`).
pub fn document_3_0() -> String {
    let mut doc = service(Shared::new(Config::default())).spec();
    doc.push('\n');
    doc
}

#[cfg(test)]
mod tests {
    use poem::{Addr, web::RemoteAddr};

    use super::Peer;

    #[test]
    fn peers_read_as_poem_writes_them() {
        for addr in [
            "0.0.0.0:0",
            "127.0.0.1:4242",
            "255.255.255.255:65535",
            "[::1]:8080",
        ] {
            let addr = RemoteAddr(Addr::SocketAddr(addr.parse().expect("an address")));
            assert_eq!(Peer(&addr).to_string(), addr.to_string());
        }
        let custom = RemoteAddr(Addr::Custom("test", "x".into()));
        assert_eq!(Peer(&custom).to_string(), custom.to_string());
    }

    #[test]
    fn paths_are_the_specs_exact_paths() {
        let spec: serde_json::Value =
            serde_json::from_str(&super::document()).expect("the spec is JSON");
        let mut in_spec: Vec<&String> = spec["paths"].as_object().expect("paths").keys().collect();
        let mut paths = super::paths();
        paths.sort();
        in_spec.sort();
        assert_eq!(paths.iter().collect::<Vec<_>>(), in_spec);
        assert!(paths.iter().all(|path| !path.contains('{')), "{paths:?}");
    }
}
