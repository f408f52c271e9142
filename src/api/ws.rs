//! `GET /stream/ws`: the chunks as WebSocket text frames, with client control.
//!
//! Everything that can refuse a stream is decided before the upgrade, as a JSON answer: the
//! parameters (400), the opening handshake (400; 426 for another protocol version), the
//! `Origin` (403, against cross-site WebSocket hijacking) and the open-stream limits (429,
//! 503). The handshake is ours, not poem's `WebSocket` extractor's: ours answers every
//! malformed upgrade with a 4xx that names the fault (the extractor lets some through and
//! answers others with a 500), and hands the upgraded connection to tokio-tungstenite
//! directly, so the stream sees tungstenite's typed errors. The connection itself is
//! [`transport::ws::run`].

use poem::{
    IntoResponse, Request, Response,
    http::{HeaderMap, HeaderName, StatusCode, Version, header},
};
use poem_openapi::{
    ApiResponse, OpenApi,
    param::Query,
    payload::Json,
    registry::{
        MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
    },
    types::Type,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{handshake::derive_accept_key, protocol::Role},
};
use tracing::Instrument;

use super::{ChunkSchema, ErrorBody, HeadRequest, Shared, StreamError, Tag, default_count, params};
use crate::{
    origin::{self, Forwarded},
    transport::{self, Transport},
};

/// The WebSocket transport.
pub struct WsApi(pub Shared);

/// The one version of the WebSocket protocol this server speaks (RFC 6455).
const WS_VERSION: u16 = 13;

/// The upgrade to a WebSocket that streams the chunks: a `101 Switching Protocols`.
pub struct WsUpgrade {
    /// `Sec-WebSocket-Accept`: the proof that the handshake was read (RFC 6455 §4.2.2).
    accept: String,
}

/// What the spec says about the `101` and its frames.
const UPGRADE_DESCRIPTION: &str = "Switching Protocols: the connection is now a WebSocket. \
The server sends each chunk `start .. count` as one text frame holding the Chunk as JSON, then \
closes with 1000 `done`. Close codes: 1000 `done` (complete) or `stopped` (after a `stop` \
action); 1001 (server shutting down); 1002 (the client broke the framing rules: an unmasked \
frame, reserved bits, an unknown opcode); 1003 (the client sent a binary frame); 1007 (the \
client sent text that is not UTF-8); 1009 (the client sent a frame or message over 4096 bytes). \
A client that answers neither pings nor reads is dropped without a close frame.";

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
        MetaResponses {
            responses: vec![MetaResponse {
                description: UPGRADE_DESCRIPTION,
                status: Some(101),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/json",
                    schema: MetaSchemaRef::Inline(Box::new(frames)),
                }],
                headers: vec![accept],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        ChunkSchema::register(registry);
    }
}

impl IntoResponse for WsUpgrade {
    fn into_response(self) -> Response {
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, self.accept)
            .finish()
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

impl WsRefused {
    fn bad_request(error: impl Into<String>) -> Self {
        Self::BadRequest(Json(ErrorBody {
            error: error.into(),
        }))
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
    /// **Handshake**: the opening handshake of RFC 6455 §4.1, a GET over HTTP/1.1 (a HEAD
    /// or an HTTP/1.0 request is refused with 400); any other `Sec-WebSocket-Version` than
    /// 13 gets 426.
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
        req: &Request,
    ) -> Result<WsUpgrade, WsRefused> {
        let params = params(count.0, interval_ms.0, start.0)?;
        let accept = handshake(req)?;
        let client = self.0.client(req);
        let forwarded = Forwarded {
            host: client.forwarded("x-forwarded-host"),
            proto: client.forwarded("x-forwarded-proto"),
        };
        origin::check(req.headers(), forwarded, &self.0.config.allowed_origins)
            .map_err(|error| WsRefused::Forbidden(Json(ErrorBody { error })))?;
        // hyper offers the connection for every HTTP/1.1 request with an `Upgrade` header,
        // which the handshake has checked; still, a refusal beats a panic.
        let on_upgrade = req.take_upgrade().map_err(|err| {
            WsRefused::bad_request(format!("cannot upgrade this connection: {err}"))
        })?;
        // The socket's deadlines end a stalled WebSocket through its write errors, which the
        // loop counts itself: the guard needs no link to the connection.
        // (A HEAD was refused by the handshake; were one to come here, it opens nothing.)
        let Some((chunks, guard)) = self.0.open(Transport::Ws, params, req)? else {
            return Err(WsRefused::bad_request(
                "a WebSocket handshake is a GET request, not HEAD",
            ));
        };
        let span = guard.span().clone();
        let options = transport::ws::Options {
            ping: self.0.config.ws_ping(),
            shutdown: self.0.streams.shutdown().token().clone(),
        };
        let stream = async move {
            // hyper hands the connection over once the 101 is written; if the client left
            // first, the guard goes here and counts it gone.
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(err) => {
                    tracing::debug!(%err, "upgrade failed");
                    return;
                }
            };
            let config = transport::ws::config();
            let socket = WebSocketStream::from_raw_socket(upgraded, Role::Server, Some(config));
            transport::ws::run(socket.await, chunks, params, guard, options).await;
        };
        // Tracked, so that shutdown waits for the stream's close frame.
        self.0.streams.shutdown().spawn(stream.instrument(span));
        Ok(WsUpgrade { accept })
    }
}

/// Checks the opening handshake (RFC 6455 §4.2.1); returns the `Sec-WebSocket-Accept`
/// value, or the 4xx that names what is wrong.
fn handshake(req: &Request) -> Result<String, WsRefused> {
    // poem serves HEAD with the GET operation; the marker says which it was.
    if req.extensions().get::<HeadRequest>().is_some() {
        return Err(WsRefused::bad_request(
            "a WebSocket opening handshake is a GET request, not HEAD (RFC 6455 §4.1)",
        ));
    }
    if req.version() != Version::HTTP_11 {
        return Err(WsRefused::bad_request(format!(
            "a WebSocket upgrade needs HTTP/1.1; this request is {:?}",
            req.version()
        )));
    }
    let headers = req.headers();
    if !lists(headers, header::UPGRADE, "websocket") {
        return Err(WsRefused::bad_request(format!(
            "{} streams over a WebSocket: connect with a WebSocket client (this request is \
             not a WebSocket upgrade: header `Upgrade` does not name `websocket`)",
            req.uri().path()
        )));
    }
    if !lists(headers, header::CONNECTION, "upgrade") {
        return Err(WsRefused::bad_request(
            "header `Connection` must list `Upgrade` for a WebSocket upgrade",
        ));
    }
    let version = headers.get(header::SEC_WEBSOCKET_VERSION);
    if version.is_none_or(|v| v.as_bytes() != WS_VERSION.to_string().as_bytes()) {
        let error = format!(
            "header `Sec-WebSocket-Version` ({}) must be {WS_VERSION}, the only version this \
             server speaks",
            version.map_or("missing", |v| v.to_str().unwrap_or("not text"))
        );
        return Err(WsRefused::UpgradeRequired(
            Json(ErrorBody { error }),
            WS_VERSION,
            "websocket".to_owned(),
        ));
    }
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) if is_key(key.as_bytes()) => key,
        _ => {
            return Err(WsRefused::bad_request(
                "header `Sec-WebSocket-Key` must appear once and be 16 bytes in base64 \
                 (RFC 6455 §4.1)",
            ));
        }
    };
    Ok(derive_accept_key(key.as_bytes()))
}

/// Whether the comma-separated header `name` lists `token`, in any case (RFC 9110 §5.6.1).
fn lists(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// Whether `key` is a `Sec-WebSocket-Key`: 16 bytes in (padded, canonical) base64.
fn is_key(key: &[u8]) -> bool {
    data_encoding::BASE64
        .decode(key)
        .is_ok_and(|nonce| nonce.len() == 16)
}

#[cfg(test)]
mod tests {
    use poem::http::{HeaderValue, Method};

    use super::*;

    /// An upgrade request with `headers` over `version`, marked HEAD if `head`.
    fn request(version: Version, head: bool, headers: &[(&'static str, &str)]) -> Request {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri_str("/stream/ws")
            .version(version)
            .finish();
        for (name, value) in headers {
            req.headers_mut()
                .append(*name, HeaderValue::from_str(value).expect("header value"));
        }
        if head {
            req.extensions_mut().insert(HeadRequest);
        }
        req
    }

    /// The headers of a valid upgrade (RFC 6455's example key), with `name` changed to
    /// `value` (or left out when `value` is `None`).
    fn upgrade_with(name: &str, value: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
        [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]
        .into_iter()
        .filter_map(|(n, v)| {
            if n == name {
                value.map(|v| (n, v))
            } else {
                Some((n, v))
            }
        })
        .collect()
    }

    #[test]
    fn a_valid_handshake_is_accepted_with_the_rfc_accept_key() {
        let cases = [
            ("as RFC 6455 writes it", upgrade_with("", None)),
            (
                "Upgrade in capitals",
                upgrade_with("upgrade", Some("WEBSOCKET")),
            ),
            (
                "Upgrade capitalised",
                upgrade_with("upgrade", Some("Websocket")),
            ),
            (
                "Upgrade among others",
                upgrade_with("upgrade", Some("h2c, websocket")),
            ),
            (
                "Connection among others (Firefox)",
                upgrade_with("connection", Some("keep-alive, Upgrade")),
            ),
            (
                "Connection in lower case",
                upgrade_with("connection", Some("upgrade")),
            ),
        ];
        for (case, headers) in cases {
            let accept = handshake(&request(Version::HTTP_11, false, &headers))
                .unwrap_or_else(|err| panic!("{case}: {err:?}"));
            // RFC 6455 §1.3's worked example.
            assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "{case}");
        }
    }

    #[test]
    fn a_malformed_handshake_is_a_400_naming_the_fault() {
        let headers = upgrade_with("", None);
        // (case, request, a word the error must hold)
        let cases = [
            ("HEAD", request(Version::HTTP_11, true, &headers), "HEAD"),
            (
                "HTTP/1.0",
                request(Version::HTTP_10, false, &headers),
                "HTTP/1.1",
            ),
            (
                "no Upgrade",
                request(Version::HTTP_11, false, &upgrade_with("upgrade", None)),
                "`Upgrade`",
            ),
            (
                "another protocol",
                request(
                    Version::HTTP_11,
                    false,
                    &upgrade_with("upgrade", Some("h2c")),
                ),
                "`Upgrade`",
            ),
            (
                "no Connection: Upgrade",
                request(
                    Version::HTTP_11,
                    false,
                    &upgrade_with("connection", Some("keep-alive")),
                ),
                "`Connection`",
            ),
            (
                "no key",
                request(
                    Version::HTTP_11,
                    false,
                    &upgrade_with("sec-websocket-key", None),
                ),
                "`Sec-WebSocket-Key`",
            ),
        ];
        let bad_keys = [
            "",
            "not base64!",
            // 15 and 17 bytes.
            "dGhlIHNhbXBsZSBub25j",
            "dGhlIHNhbXBsZSBub25jZSE=",
            // 16 bytes, but unpadded, or with stray bits in the last character.
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZR==",
        ];
        let bad_keys = bad_keys.into_iter().map(|key| {
            let headers = upgrade_with("sec-websocket-key", Some(key));
            (
                key,
                request(Version::HTTP_11, false, &headers),
                "`Sec-WebSocket-Key`",
            )
        });
        let mut two_keys = headers.clone();
        two_keys.push(("sec-websocket-key", "AQIDBAUGBwgJCgsMDQ4PEA=="));
        let two_keys = (
            "two keys",
            request(Version::HTTP_11, false, &two_keys),
            "once",
        );
        for (case, req, needle) in cases.into_iter().chain(bad_keys).chain([two_keys]) {
            match handshake(&req) {
                Err(WsRefused::BadRequest(Json(ErrorBody { error }))) => {
                    assert!(error.contains(needle), "{case}: {error}");
                }
                other => panic!("{case}: {other:?}"),
            }
        }
    }

    #[test]
    fn another_protocol_version_is_a_426_naming_13() {
        for version in [Some("8"), Some("12"), Some("13, 8"), Some(""), None] {
            let headers = upgrade_with("sec-websocket-version", version);
            match handshake(&request(Version::HTTP_11, false, &headers)) {
                Err(WsRefused::UpgradeRequired(Json(ErrorBody { error }), supported, upgrade)) => {
                    assert_eq!((supported, upgrade.as_str()), (13, "websocket"));
                    assert!(
                        error.contains("`Sec-WebSocket-Version`"),
                        "{version:?}: {error}"
                    );
                }
                other => panic!("{version:?}: {other:?}"),
            }
        }
    }
}
