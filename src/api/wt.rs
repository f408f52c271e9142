//! `/stream/wt`: WebTransport. Over HTTP, `GET /stream/wt` tells a page how to open the
//! session (its URL and the certificate's hash); over HTTP/3 on UDP, [`session`] accepts the
//! session or refuses it with a status, as every other stream operation would answer.

use std::net::SocketAddr;

use poem::{
    Request,
    http::{header, uri::Authority},
    web::Data,
};
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use tracing::Instrument;
use wtransport::endpoint::SessionRequest;

use super::{ErrorBody, State, StreamError, StreamQuery, Tag, errors::RETRY_AFTER_SECS};
use crate::{
    client::ClientKey,
    generator::StreamParams,
    streams::{Peer, Recipient, Refusal, Transport},
    transport::wt::{self, CLOSE_GRACE},
};

/// The WebTransport transport.
#[derive(Default)]
pub struct WtApi;

/// What `new WebTransport(url, {serverCertificateHashes})` needs.
#[derive(Debug, Object)]
#[oai(rename = "WebTransportSession")]
pub struct Connect {
    /// The session's URL, `https://HOST:PORT/stream/wt?count=…&interval_ms=…&start=…`: the
    /// host this request was sent to, the server's UDP port, the parameters as checked.
    pub url: String,
    /// The server's own certificate, accepted by its SHA-256 (WebTransport's
    /// `serverCertificateHashes`); empty when the server presents a certificate a browser
    /// checks the usual way (`--tls-cert`).
    #[oai(rename = "serverCertificateHashes")]
    pub server_certificate_hashes: Vec<CertificateHash>,
}

/// One certificate's hash, as `serverCertificateHashes` takes it.
#[derive(Debug, Object)]
#[oai(rename = "CertificateHash")]
pub struct CertificateHash {
    /// Always `sha-256`.
    pub algorithm: String,
    /// The certificate's SHA-256 (of its DER), base64: a page decodes it to bytes.
    pub value: String,
}

/// What `GET /stream/wt` answers when the stream could be opened now.
#[derive(Debug, ApiResponse)]
pub enum WtAnswer {
    /// Where the session is, and the certificate hashes to accept it by.
    #[oai(status = 200)]
    Connect(Json<Connect>),
    /// The server serves no WebTransport (`--webtransport off`).
    #[oai(status = 404)]
    Off(Json<ErrorBody>),
}

#[OpenApi]
impl WtApi {
    /// Open a WebTransport session that streams chunks
    ///
    /// Over HTTP, this answers what a page needs to open the session (HTTP/3 over UDP):
    /// `new WebTransport(url, {serverCertificateHashes})`, each hash's `value` decoded from
    /// base64 to bytes. The answer names the host this request was sent to and the server's
    /// UDP port (by default the HTTP port's number). Ask again for each session: the
    /// server's own certificate is renewed while it runs.
    ///
    /// **The session** (`https://HOST:PORT/stream/wt?count=…&interval_ms=…&start=…`, or
    /// `url` above): the chunks `start .. count` arrive on the first unidirectional stream
    /// the server opens, one Chunk's JSON per line (`{"index":0,"text":"Data Chunk 0"}` and
    /// a line feed), and that stream is finished after the last chunk. The client may open
    /// one unidirectional stream and write control lines: `{"action":"pause"}`,
    /// `{"action":"resume"}`, `{"action":"stop"}` (the chunk stream is finished at once),
    /// as over a WebSocket.
    ///
    /// **Refused sessions** get the status this operation would answer with: 400 (a bad
    /// parameter), 429 or 503 (with `Retry-After`); 404 for another path. A browser does not
    /// show a page the status of a refused session: this answer does.
    ///
    /// **Close codes** (the session's close code; the chunk stream's reset code, a page's
    /// `WebTransportError.streamErrorCode`): 0 after the last chunk or a `stop`; 1 when the
    /// server shuts down (going away: reconnect, here or to another instance, and resume
    /// with `start` at the index after the last chunk received; the chunk stream is reset
    /// with 1); 2 for a control line that is not one of the three actions, or over 4096
    /// bytes (the close reason says which; the chunk stream is reset with 2); 3 when the
    /// client accepted no bytes for the stall timeout.
    #[oai(path = "/stream/wt", method = "get", tag = "Tag::Stream")]
    async fn stream_wt(
        &self,
        state: Data<&State>,
        query: StreamQuery,
        req: &Request,
    ) -> Result<WtAnswer, StreamError> {
        let Some(wt) = state.webtransport() else {
            return Ok(WtAnswer::Off(ErrorBody::json(
                "this server serves no WebTransport (--webtransport off)",
            )));
        };
        let client = state.client(req);
        // What opening would refuse now; the session itself is refused the same way.
        state
            .streams()
            .check(client.key())
            .map_err(StreamError::from)?;
        let host = client
            .forwarded("x-forwarded-host")
            .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
            .map(str::to_owned)
            .or_else(|| {
                req.local_addr()
                    .as_socket_addr()
                    .map(|a| a.ip().to_string())
            });
        let host = host_of(host.as_deref().unwrap_or_default())?;
        let url = session_url(&host, wt.port, &query.0);
        let server_certificate_hashes = wt
            .certs
            .hashes()
            .into_iter()
            .map(|value| CertificateHash {
                algorithm: "sha-256".to_owned(),
                value,
            })
            .collect();
        Ok(WtAnswer::Connect(Json(Connect {
            url,
            server_certificate_hashes,
        })))
    }
}

/// The host of an authority (`example.com:8080` → `example.com`, `[::1]:80` → `[::1]`; a
/// bare IPv6 address gets its brackets), or the 400 that says it is none.
fn host_of(authority: &str) -> Result<String, StreamError> {
    if let Ok(ip) = authority.parse::<std::net::Ipv6Addr>() {
        return Ok(format!("[{ip}]"));
    }
    authority
        .parse::<Authority>()
        .ok()
        .filter(|a| {
            // `http` takes any text after the last colon as a port; a port is digits.
            let port = authority.strip_prefix(a.host()).unwrap_or("x");
            let port_ok = port.is_empty()
                || port
                    .strip_prefix(':')
                    .is_some_and(|p| p.parse::<u16>().is_ok());
            !a.host().is_empty() && !authority.contains('@') && port_ok
        })
        .map(|a| a.host().to_owned())
        .ok_or_else(|| {
            StreamError::bad_request(format!("the `Host` header `{authority}` names no host"))
        })
}

/// The session's URL on `host` and `port` for `params`.
fn session_url(host: &str, port: u16, params: &StreamParams) -> String {
    format!(
        "https://{host}:{port}{}?count={}&interval_ms={}&start={}",
        Transport::Wt.path(),
        params.count(),
        params.interval_ms(),
        params.start()
    )
}

/// Accepts the session `request` asks for, streaming until it ends, or refuses it with the
/// status an HTTP request for it would get (400, 404, 429, 503).
pub async fn session(state: State, request: SessionRequest) {
    let path = request.path().to_owned();
    let (route, query) = path.split_once('?').unwrap_or((&path, ""));
    if route != Transport::Wt.path() {
        tracing::debug!(path, "webtransport session for no route");
        request.not_found().await;
        return;
    }
    let params = match StreamQuery::parse(query) {
        Ok(StreamQuery(params)) => params,
        Err(refused) => {
            tracing::debug!(path, ?refused, "webtransport session refused");
            return refuse(request, 400, "a bad parameter").await;
        }
    };
    let remote: SocketAddr = request.remote_address();
    let remote = SocketAddr::new(remote.ip().to_canonical(), remote.port());
    let to = Recipient {
        key: ClientKey::of(remote.ip()),
        peer: Peer(Some(remote)),
        // QUIC's flow control tells the session loop itself when its client stalls.
        connection: None,
    };
    let chunks = match state.streams().open(Transport::Wt, params, to) {
        Ok(chunks) => chunks,
        Err(refusal) => {
            let status = match refusal {
                Refusal::Busy { .. } => 503,
                Refusal::FairShare { .. } => 429,
            };
            return refuse(request, status, "no room").await;
        }
    };
    let span = chunks.span().clone();
    let Ok(connection) = request.accept().await else {
        // The client left during the handshake: the stream is counted as gone.
        return;
    };
    let options = wt::Options {
        stall: state.config().timeouts().stall,
        idle: state.config().timeouts().idle,
        shutdown: state.streams().shutdown().token().clone(),
    };
    wt::serve(connection, chunks, options)
        .instrument(span)
        .await;
}

/// Answers the session request with `status` (and `Retry-After` when there is no room), then
/// gives the client [`CLOSE_GRACE`] to leave before closing its connection.
async fn refuse(request: SessionRequest, status: u16, reason: &str) {
    // wtransport refuses with 403, 404 or 429 only; the response's headers are a map, whose
    // `:status` the accepted answer's fields replace.
    let mut headers = vec![(":status", status.to_string())];
    if status != 400 {
        headers.push(("retry-after", RETRY_AFTER_SECS.to_string()));
    }
    let Ok(connection) = request.accept_with_headers(headers).await else {
        return;
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, connection.closed()).await;
    connection.close(wt::Code::Done.session(), reason.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_a_host_header_keeps_brackets_and_drops_the_port() {
        for (authority, host) in [
            ("127.0.0.1:3000", "127.0.0.1"),
            ("localhost", "localhost"),
            ("Example.com:8443", "Example.com"),
            ("[::1]:3000", "[::1]"),
            ("::1", "[::1]"),
        ] {
            assert_eq!(
                host_of(authority).ok().as_deref(),
                Some(host),
                "{authority}"
            );
        }
        for bad in ["", "a b", "user@host", "/path", "host:port"] {
            assert!(host_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_url_carries_the_checked_parameters() {
        let params = StreamParams::new(5, 100, 2).expect("params");
        assert_eq!(
            session_url("[::1]", 4433, &params),
            "https://[::1]:4433/stream/wt?count=5&interval_ms=100&start=2"
        );
    }
}
