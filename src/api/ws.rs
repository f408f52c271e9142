//! `GET /stream/ws`: the chunks as WebSocket text frames, with client control.
//!
//! Everything that can refuse a stream is decided before the upgrade, as a JSON answer:
//! the parameters (400), the `Origin` (403, against cross-site WebSocket hijacking) and the
//! open-stream limit (503). The connection itself is [`transport::ws::run`].

use futures_util::StreamExt;
use poem::{
    IntoResponse, Request, Response,
    http::{HeaderMap, header},
    web::websocket::{BoxWebSocketUpgraded, WebSocket},
};
use poem_openapi::{
    ApiResponse, OpenApi,
    param::Query,
    payload::Json,
    registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry},
    types::Type,
};
use tracing::Instrument;

use super::{ChunkSchema, ErrorBody, Shared, StreamError, Tag, default_count, params};
use crate::transport::{self, Transport};

/// The WebSocket transport.
pub struct WsApi(pub Shared);

/// The upgrade to a WebSocket that streams the chunks: a `101 Switching Protocols`.
pub struct WsUpgrade(BoxWebSocketUpgraded);

/// What the spec says about the `101` and its frames.
const UPGRADE_DESCRIPTION: &str = "Switching Protocols: the connection is now a WebSocket. \
The server sends each chunk `start .. count` as one text frame holding the Chunk as JSON, then \
closes with 1000 `done`. Close codes: 1000 `done` (complete) or `stopped` (after a `stop` \
action); 1001 (server shutting down); 1003 (the client sent a binary frame); 1009 (the client \
sent a frame or message over 4096 bytes). A client that answers neither pings nor reads is \
dropped without a close frame.";

impl ApiResponse for WsUpgrade {
    fn meta() -> MetaResponses {
        // OpenAPI 3.0 cannot describe WebSocket frames; like an event stream, they are shown
        // as an array of Chunk in a `websocket` format, one text frame per item.
        let frames = MetaSchema {
            description: Some(
                "The text frames the server sends, in order: one Chunk as JSON per frame. \
                 Frames the client sends are control messages (see the operation).",
            ),
            items: Some(Box::new(ChunkSchema::schema_ref())),
            ..MetaSchema::new_with_format("array", "websocket")
        };
        MetaResponses {
            responses: vec![MetaResponse {
                description: UPGRADE_DESCRIPTION,
                status: Some(101),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/json",
                    schema: MetaSchemaRef::Inline(Box::new(frames)),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        ChunkSchema::register(registry);
    }
}

impl IntoResponse for WsUpgrade {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

/// Why no WebSocket was opened; always answered before the upgrade, as JSON.
#[derive(Debug, ApiResponse)]
pub enum WsRefused {
    /// A parameter is malformed or out of range; `error` names it.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The `Origin` header names a site that may not open streams: neither this server's
    /// own origin nor an `--allowed-origin` (protection against cross-site WebSocket
    /// hijacking). Clients that send no `Origin` are not browsers and are let in.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// This client already holds its share of streams (`--max-streams-per-client`, over all
    /// transports): close one, or retry after `Retry-After` seconds.
    #[oai(status = 429)]
    TooMany(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// Too many streams are open: retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Busy(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl From<StreamError> for WsRefused {
    fn from(err: StreamError) -> Self {
        match err {
            StreamError::BadRequest(body) => Self::BadRequest(body),
            StreamError::TooMany(body, retry_after) => Self::TooMany(body, retry_after),
            StreamError::Busy(body, retry_after) => Self::Busy(body, retry_after),
        }
    }
}

#[OpenApi]
impl WsApi {
    /// Stream chunks over a WebSocket
    ///
    /// Open with `new WebSocket("ws://<host>/stream/ws?count=10&interval_ms=300")`. Each
    /// chunk `start .. count` arrives as one text frame holding the Chunk as JSON
    /// (`{"index":0,"text":"Data Chunk 0"}`); after the last one the server closes with
    /// code 1000, reason `done`.
    ///
    /// **Control messages** (text frames from the client): `{"action":"pause"}` stops the
    /// generator (nothing is made while paused), `{"action":"resume"}` continues with the next
    /// index, `{"action":"stop"}` ends the stream (close 1000, reason `stopped`). Anything
    /// else is answered with a text frame `{"error":"…"}` and the stream goes on. Pacing is
    /// absolute (chunk *k* is due `k·interval_ms` after the start), so after a pause the
    /// chunks that fell due meanwhile arrive at once, then the pace resumes.
    ///
    /// **Limits**: a binary frame closes with 1003; a frame or message over 4096 bytes closes
    /// with 1009. Pings are answered; a client silent for `--ws-ping-secs` (default 30) is
    /// pinged, and dropped if it has not answered by the next period. Server shutdown closes
    /// with 1001.
    ///
    /// **Origin**: a browser upgrade from another site (an `Origin` that is neither this
    /// server's nor an `--allowed-origin`) gets 403. Swagger UI cannot open a WebSocket: use
    /// the live page at `/`, `websocat`, or a browser console.
    #[oai(path = "/stream/ws", method = "get", tag = "Tag::Stream")]
    async fn stream_ws(
        &self,
        /// Length of the stream: chunks `start .. count` are sent.
        #[oai(
            default = "default_count",
            validator(minimum(value = "0"), maximum(value = "100000000"))
        )]
        count: Query<u64>,
        /// Pause between two chunks, in milliseconds (0: as fast as the client reads).
        #[oai(default, validator(minimum(value = "0"), maximum(value = "60000")))]
        interval_ms: Query<u64>,
        /// Index of the first chunk, at most `count` (a resume point).
        #[oai(default, validator(minimum(value = "0"), maximum(value = "100000000")))]
        start: Query<u64>,
        ws: WebSocket,
        req: &Request,
    ) -> Result<WsUpgrade, WsRefused> {
        let params = params(count.0, interval_ms.0, start.0)?;
        let client = self.0.client(req);
        let forwarded = Forwarded {
            host: client.forwarded("x-forwarded-host"),
            proto: client.forwarded("x-forwarded-proto"),
        };
        check_origin(req.headers(), forwarded, &self.0.config.allowed_origins)
            .map_err(|error| WsRefused::Forbidden(Json(ErrorBody { error })))?;
        let streams = self.0.streams.clone();
        // The socket's deadlines end a stalled WebSocket through its write errors, which the
        // loop counts itself: the guard needs no link to the connection.
        let Some((chunks, guard)) = self.0.open(Transport::Ws, params, req)? else {
            return Err(WsRefused::BadRequest(Json(ErrorBody {
                error: "a WebSocket handshake is a GET request, not HEAD".to_owned(),
            })));
        };
        let span = guard.span().clone();
        let options = transport::ws::Options {
            ping: self.0.config.ws_ping(),
            shutdown: streams.shutdown().token().clone(),
        };
        let upgraded = ws
            .config(transport::ws::config())
            .on_upgrade(move |socket| {
                // poem spawns this future and forgets it: tracked, shutdown waits for it.
                // (The generator does nothing until the loop polls it.)
                let (sink, incoming) = socket.split();
                streams.shutdown().track(
                    transport::ws::run(sink, incoming, chunks, params, guard, options)
                        .instrument(span),
                )
            });
        Ok(WsUpgrade(upgraded.boxed()))
    }
}

/// What a trusted reverse proxy says the browser saw (`X-Forwarded-Host`,
/// `X-Forwarded-Proto`); empty when the request did not come through one.
#[derive(Debug, Clone, Copy, Default)]
struct Forwarded<'a> {
    host: Option<&'a str>,
    proto: Option<&'a str>,
}

/// Refuses a browser upgrade from a foreign site; the error says which origin and why.
///
/// The server's own origin is the request's scheme and `Host`; behind a trusted reverse
/// proxy, its `X-Forwarded-Proto` and `X-Forwarded-Host` say what the browser saw.
fn check_origin(
    headers: &HeaderMap,
    forwarded: Forwarded<'_>,
    allowed: &[String],
) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map(normalise).unwrap_or_default();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let forwarded_host = forwarded.host.or(host);
    let forwarded_proto = forwarded.proto.unwrap_or("http");
    let own = [
        host.map(|host| normalise(&format!("http://{host}"))),
        forwarded_host.map(|host| normalise(&format!("{forwarded_proto}://{host}"))),
    ];
    let is_own = own.iter().flatten().any(|own| *own == origin);
    if !origin.is_empty() && (is_own || allowed.iter().any(|a| normalise(a) == origin)) {
        return Ok(());
    }
    Err(format!(
        "header `Origin` ({}) is not this server's origin nor an allowed origin",
        headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("not text")
    ))
}

/// An origin for comparison: lower-case, no trailing slash, no default port.
fn normalise(origin: &str) -> String {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    for (scheme, port) in [("http://", ":80"), ("https://", ":443")] {
        if origin.starts_with(scheme) {
            if let Some(bare) = origin.strip_suffix(port) {
                return bare.to_owned();
            }
        }
    }
    origin
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderValue;

    use super::*;

    /// Request headers, as `(name, value)` pairs.
    type Pairs<'a> = &'a [(&'static str, &'a str)];

    fn headers(pairs: Pairs<'_>) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("valid header"));
        }
        map
    }

    #[test]
    fn origins_are_checked() {
        let allowed = ["https://app.example.com".to_owned()];
        // (case, headers, allowed?)
        let cases: &[(&str, Pairs<'_>, bool)] = &[
            ("no origin", &[("host", "localhost:3000")], true),
            (
                "same origin",
                &[
                    ("host", "localhost:3000"),
                    ("origin", "http://localhost:3000"),
                ],
                true,
            ),
            (
                "same origin, upper case",
                &[
                    ("host", "LocalHost:3000"),
                    ("origin", "HTTP://localhost:3000"),
                ],
                true,
            ),
            (
                "default port",
                &[("host", "example.com:80"), ("origin", "http://example.com")],
                true,
            ),
            (
                "allowed origin",
                &[
                    ("host", "localhost:3000"),
                    ("origin", "https://app.example.com"),
                ],
                true,
            ),
            (
                "behind a TLS proxy",
                &[
                    ("host", "10.0.0.5:3000"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-host", "stream.example.com"),
                    ("origin", "https://stream.example.com"),
                ],
                true,
            ),
            (
                "proxy keeps the host",
                &[
                    ("host", "stream.example.com"),
                    ("x-forwarded-proto", "https"),
                    ("origin", "https://stream.example.com"),
                ],
                true,
            ),
            (
                "foreign origin",
                &[
                    ("host", "localhost:3000"),
                    ("origin", "http://evil.example"),
                ],
                false,
            ),
            (
                "other port",
                &[
                    ("host", "localhost:3000"),
                    ("origin", "http://localhost:8080"),
                ],
                false,
            ),
            (
                "other scheme",
                &[
                    ("host", "localhost:3000"),
                    ("origin", "https://localhost:3000"),
                ],
                false,
            ),
            (
                "null origin",
                &[("host", "localhost:3000"), ("origin", "null")],
                false,
            ),
            (
                "empty origin",
                &[("host", "localhost:3000"), ("origin", "")],
                false,
            ),
            ("no host", &[("origin", "http://localhost:3000")], false),
        ];
        for (case, pairs, ok) in cases {
            // As if every request came through a trusted proxy: its forwarded headers count.
            let headers = headers(pairs);
            let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let forwarded = Forwarded {
                host: value("x-forwarded-host"),
                proto: value("x-forwarded-proto"),
            };
            let result = check_origin(&headers, forwarded, &allowed);
            assert_eq!(result.is_ok(), *ok, "{case}: {result:?}");
            if let Err(error) = result {
                assert!(error.contains("`Origin`"), "{case}: {error}");
            }
        }
    }

    #[test]
    fn forwarded_headers_count_only_through_a_trusted_proxy() {
        let headers = headers(&[
            ("host", "10.0.0.5:3000"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "stream.example.com"),
            ("origin", "https://stream.example.com"),
        ]);
        // From an untrusted peer the api passes no forwarded values.
        let result = check_origin(&headers, Forwarded::default(), &[]);
        assert!(result.is_err(), "{result:?}");
    }
}
