//! `GET /stream/ws`: the chunks as WebSocket text messages, with client control.
//!
//! Everything that can refuse a stream is decided before the upgrade, as a JSON answer: the
//! parameters (400), the opening handshake (400; 426 for another protocol version), the
//! `Origin` (403, against cross-site WebSocket hijacking) and the open-stream limits (429,
//! 503). The handshake is ours ([`handshake`]), not poem's `WebSocket` extractor's: ours
//! answers every malformed upgrade with a 4xx that names the fault (the extractor lets some
//! through and answers others with a 500), and hands the upgraded connection to
//! tokio-tungstenite directly, so the stream sees tungstenite's typed errors. The connection
//! itself is [`ws::serve`].

use poem::{
    IntoResponse, Request, Response,
    http::{StatusCode, header},
    web::Data,
};
use poem_openapi::{
    ApiResponse, OpenApi,
    payload::Json,
    registry::{
        MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
    },
    types::Type,
};
use tracing::Instrument;

use super::{ChunkSchema, ErrorBody, HeadRequest, State, StreamError, StreamQuery, Tag};
use crate::{
    config::Compression,
    origin::{self, Forwarded},
    streams::Transport,
    transport::ws::{self, handshake},
};

/// The WebSocket transport.
#[derive(Default)]
pub struct WsApi;

/// The upgrade to a WebSocket that streams the chunks: a `101 Switching Protocols`.
pub struct WsUpgrade {
    /// `Sec-WebSocket-Accept`: the proof that the handshake was read (RFC 6455 §4.2.2).
    accept: String,
    /// `Sec-WebSocket-Extensions`: permessage-deflate as accepted, if it was.
    extensions: Option<String>,
}

/// What the spec says about the `101` and its frames.
const UPGRADE_DESCRIPTION: &str = "Switching Protocols: the connection is now a WebSocket. \
The server sends each chunk `start .. count` as one text frame holding the Chunk as JSON, then \
closes with 1000 `done`. Close codes: 1000 `done` (complete) or `stopped` (after a `stop` \
action); 1001 (server shutting down); 1002 (the client broke the framing rules: an unmasked \
frame, reserved bits, an unknown opcode); 1003 (the client sent a binary frame); 1007 (the \
client sent text that is not UTF-8); 1009 (the client sent a frame or message over 4096 bytes). \
A client that answers neither pings nor reads is dropped without a close frame. \
With permessage-deflate agreed (`Sec-WebSocket-Extensions` in this answer), the server's text \
frames are compressed (RSV1 set) and the client's may be: a compressed message over 4096 bytes \
once inflated also closes with 1009, text not UTF-8 once inflated with 1007, and compressed \
data that does not inflate with 1002.";

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
        let accept = MetaHeader {
            name: "SEC-WEBSOCKET-ACCEPT".to_owned(),
            description: Some(
                "The client's `Sec-WebSocket-Key`, signed as RFC 6455 §4.2.2 says.".to_owned(),
            ),
            required: true,
            deprecated: false,
            schema: String::schema_ref(),
        };
        let extensions = MetaHeader {
            name: "SEC-WEBSOCKET-EXTENSIONS".to_owned(),
            description: Some(
                "Present when the client offered permessage-deflate (RFC 7692) in a form the \
                 server accepts: the first acceptable offer, always with \
                 `client_no_context_takeover` (the client compresses each message alone), e.g. \
                 `permessage-deflate; client_no_context_takeover`. Absent otherwise, or with \
                 `--compression off`: the frames are then uncompressed."
                    .to_owned(),
            ),
            required: false,
            deprecated: false,
            schema: String::schema_ref(),
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
                headers: vec![accept, extensions],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        ChunkSchema::register(registry);
    }
}

impl IntoResponse for WsUpgrade {
    fn into_response(self) -> Response {
        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, self.accept);
        if let Some(extensions) = self.extensions {
            response = response.header(header::SEC_WEBSOCKET_EXTENSIONS, extensions);
        }
        response.finish()
    }
}

/// Why no WebSocket was opened; always answered before the upgrade, as JSON.
#[derive(Debug, ApiResponse)]
pub enum WsRefused {
    /// A parameter is malformed or out of range, or the request is not a valid WebSocket
    /// opening handshake (RFC 6455 §4.1: a GET over HTTP/1.1 with `Upgrade: websocket`,
    /// `Connection: Upgrade` and a `Sec-WebSocket-Key` of 16 bytes in base64); `error` names
    /// what is wrong.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The `Origin` header names a site that may not open streams: neither this server's
    /// own origin nor an `--allowed-origin` (protection against cross-site WebSocket
    /// hijacking). Clients that send no `Origin` are not browsers and are let in.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// The client asked for a version of the WebSocket protocol other than 13 (or named
    /// none) in `Sec-WebSocket-Version`: this server speaks only version 13, as this answer's
    /// `Sec-WebSocket-Version` says (RFC 6455 §4.4).
    #[oai(status = 426)]
    UpgradeRequired(
        Json<ErrorBody>,
        /// The protocol versions this server speaks: 13.
        #[oai(header = "Sec-WebSocket-Version")]
        u16,
        /// The protocol required: `websocket`.
        #[oai(header = "Upgrade")]
        String,
    ),
    /// This client already holds its share of streams (`--max-streams-per-client`, over all
    /// transports): close one, or retry after `Retry-After` seconds.
    #[oai(status = 429)]
    TooMany(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// Too many streams are open: retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Busy(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl From<handshake::Refused> for WsRefused {
    fn from(refused: handshake::Refused) -> Self {
        match refused {
            handshake::Refused::BadRequest(error) => Self::BadRequest(ErrorBody::json(error)),
            handshake::Refused::UpgradeRequired(error) => Self::UpgradeRequired(
                ErrorBody::json(error),
                handshake::VERSION,
                "websocket".to_owned(),
            ),
        }
    }
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
    /// with 1009; a frame that breaks RFC 6455 (unmasked, reserved bits set, unknown opcode)
    /// closes with 1002, and text that is not UTF-8 with 1007. Pings are answered; a client
    /// silent for `--ws-ping-secs` (default 30) is pinged, and dropped if it has not answered
    /// by the next period. Server shutdown closes with 1001.
    ///
    /// **Compression**: a client that offers `permessage-deflate` (RFC 7692; browsers do)
    /// gets it, unless the server runs with `--compression off`: each chunk's frame is then
    /// compressed, with the context kept from one frame to the next, and the client's
    /// compressed frames are understood (each compressed alone: the answer says
    /// `client_no_context_takeover`). An offer the server cannot honour (a 256-byte window,
    /// an unknown or repeated parameter) is declined, and the next one tried; with none
    /// acceptable, the frames go uncompressed.
    ///
    /// **Handshake**: the opening handshake of RFC 6455 §4.1, a GET over HTTP/1.1 (a HEAD
    /// or an HTTP/1.0 request is refused with 400); any other `Sec-WebSocket-Version` than
    /// 13 gets 426.
    ///
    /// **Origin**: a browser upgrade from another site (an `Origin` that is neither this
    /// server's nor an `--allowed-origin`) gets 403.
    ///
    /// **Try it** at `/docs`: Execute opens the WebSocket with these parameters and shows each
    /// message; Pause, Resume and Stop send the control messages, and the close code and
    /// reason are shown. A browser never tells a page why an upgrade was refused: the 4xx
    /// answers below are for clients that read them (`websocat`, `curl`).
    #[oai(path = "/stream/ws", method = "get", tag = "Tag::Stream")]
    async fn stream_ws(
        &self,
        state: Data<&State>,
        query: StreamQuery,
        req: &Request,
    ) -> Result<WsUpgrade, WsRefused> {
        let StreamQuery(params) = query;
        let head = req.extensions().get::<HeadRequest>().is_some();
        let accept = handshake::check(req, head)?;
        let client = state.client(req);
        let forwarded = Forwarded {
            host: client.forwarded("x-forwarded-host"),
            proto: client.forwarded("x-forwarded-proto"),
        };
        origin::check(req.headers(), forwarded, &state.config().allowed_origins)
            .map_err(|error| WsRefused::Forbidden(ErrorBody::json(error)))?;
        // hyper offers the connection for every HTTP/1.1 request with an `Upgrade` header,
        // which the handshake has checked; still, a refusal beats a panic.
        let upgrade = req.take_upgrade().map_err(|err| {
            WsRefused::BadRequest(ErrorBody::json(format!(
                "cannot upgrade this connection: {err}"
            )))
        })?;
        let chunks = state.open(Transport::Ws, params, req)?;
        let span = chunks.span().clone();
        let deflate = match state.config().compression {
            Compression::On => ws::Deflate::negotiate(req.headers()),
            Compression::Off => None,
        };
        let extensions = deflate.as_ref().map(ws::Deflate::answer);
        let options = ws::Options {
            ping: state.config().ws_ping(),
            shutdown: state.streams().shutdown().token().clone(),
            deflate,
        };
        // Tracked, so that shutdown waits for the stream's close frame.
        let stream = ws::serve(upgrade, chunks, options);
        state.streams().shutdown().spawn(stream.instrument(span));
        Ok(WsUpgrade { accept, extensions })
    }
}
