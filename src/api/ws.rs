//! `GET /stream/ws`: the chunks as WebSocket text frames, with client control.
//!
//! Everything that can refuse a stream is decided before the upgrade, as a JSON answer:
//! the parameters (400), the `Origin` (403, against cross-site WebSocket hijacking) and the
//! open-stream limit (503). The connection itself is [`transport::ws::run`].

use futures_util::StreamExt;
use poem::{
    IntoResponse, Request, Response,
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
use crate::{
    generator,
    origin::{self, Forwarded},
    streams::Transport,
    transport,
};

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
        #[oai(default, validator(minimum(value = "0")))]
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
        origin::check(req.headers(), forwarded, &self.0.config.allowed_origins)
            .map_err(|error| WsRefused::Forbidden(Json(ErrorBody { error })))?;
        let streams = self.0.streams.clone();
        // The socket's deadlines end a stalled WebSocket through its write errors, which the
        // loop counts itself: the guard needs no link to the connection.
        let guard = self.0.open(Transport::Ws, &params, req)?;
        let span = guard.span().clone();
        let options = transport::ws::Options {
            ping: self.0.config.ws_ping(),
            shutdown: streams.shutdown_token().clone(),
        };
        let upgraded = ws
            .config(transport::ws::config())
            .on_upgrade(move |socket| {
                // poem spawns this future and forgets it: the tracker lets shutdown wait for
                // it. The generator is made only now, once the upgrade has succeeded.
                let chunks = generator::chunks(params, options.shutdown.clone());
                let (sink, incoming) = socket.split();
                streams.tasks().track_future(
                    transport::ws::run(sink, incoming, chunks, params, guard, options)
                        .instrument(span),
                )
            });
        Ok(WsUpgrade(upgraded.boxed()))
    }
}
