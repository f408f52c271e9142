//! A client of one stream on any transport (an HTTP body, a WebSocket, a WebTransport
//! session), for the tests that cover every transport alike.

use std::time::Duration;

use futures_util::StreamExt;

use crate::helpers::TestApp;

/// A client of one stream on any transport: the HTTP body, the WebSocket, or the
/// WebTransport session.
pub enum StreamClient {
    /// A text, SSE or JSON Lines body (with its own client, so its own connection).
    Http(reqwest::Client, BodyStream),
    /// A WebSocket.
    Ws(Box<WsClient>),
    /// A WebTransport session.
    Wt(Box<crate::wt_client::WtSession>),
}

/// An HTTP body, read frame by frame.
pub type BodyStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// A WebSocket client over a plain socket.
pub type WsClient =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A refused stream: the status, its `Retry-After`, and the JSON body's `error`.
#[derive(Debug)]
pub struct Refused {
    /// The status.
    pub status: u16,
    /// `Retry-After`, if sent.
    pub retry_after: Option<String>,
    /// The body's `error`.
    pub error: String,
}

impl Refused {
    /// The refusal `resp` is.
    pub async fn of(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let json: serde_json::Value = resp.json().await.expect("a JSON refusal");
        let error = json["error"].as_str().unwrap_or_default().to_owned();
        Self {
            status,
            retry_after,
            error,
        }
    }
}

/// How a stream ended for its client.
#[derive(Debug, PartialEq)]
pub enum Ended {
    /// An HTTP body ended cleanly: everything after the first frame.
    Body(Vec<u8>),
    /// A WebSocket closed: its close code, if a close frame came.
    Closed(Option<u16>),
    /// A WebTransport session's chunk stream ended so (then the client closed the session).
    Session(crate::wt_client::StreamEnd),
}

impl StreamClient {
    /// Opens `transport`'s stream with `query`, or returns the refusal.
    pub async fn open(
        app: &TestApp,
        transport: chunkstream::streams::Transport,
        query: &str,
    ) -> Result<Self, Refused> {
        use chunkstream::streams::Transport;
        let path = format!("{}?{query}", transport.path());
        if transport == Transport::Wt {
            let session = crate::wt_client::WtSession::open_or_refused(app, query).await?;
            return Ok(Self::Wt(Box::new(session)));
        }
        if transport == Transport::Ws {
            let url = format!("ws://{}{path}", app.addr);
            return match tokio_tungstenite::connect_async(url).await {
                Ok((ws, _)) => Ok(Self::Ws(Box::new(ws))),
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_owned());
                    let body = resp.body().clone().unwrap_or_default();
                    let json: serde_json::Value =
                        serde_json::from_slice(&body).expect("a JSON refusal");
                    Err(Refused {
                        status: resp.status().as_u16(),
                        retry_after,
                        error: json["error"].as_str().unwrap_or_default().to_owned(),
                    })
                }
                Err(err) => panic!("{path}: {err}"),
            };
        }
        let client = reqwest::Client::new();
        let resp = client
            .get(app.url(&path))
            .send()
            .await
            .expect("request sent");
        if resp.status() != 200 {
            return Err(Refused::of(resp).await);
        }
        Ok(Self::Http(client, Box::pin(resp.bytes_stream())))
    }

    /// Waits (at most 5 s) for the stream's first bytes or text frame.
    pub async fn first(&mut self) {
        let next = async {
            match self {
                Self::Http(_, body) => {
                    body.next()
                        .await
                        .expect("a first frame")
                        .expect("body bytes");
                }
                Self::Ws(ws) => loop {
                    match ws.next().await.expect("a first message").expect("a frame") {
                        tokio_tungstenite::tungstenite::Message::Text(_) => break,
                        _ => continue,
                    }
                },
                Self::Wt(session) => {
                    session.line().await.expect("a first line");
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("the stream's first chunk within 5 s");
    }

    /// Reads to the end (at most 5 s): the rest of an HTTP body, which must end cleanly, or
    /// a WebSocket's close frame.
    pub async fn end(self) -> Ended {
        let rest = async {
            match self {
                Self::Http(_client, mut body) => {
                    let mut rest = Vec::new();
                    while let Some(frame) = body.next().await {
                        rest.extend_from_slice(&frame.expect("a clean end of the body"));
                    }
                    Ended::Body(rest)
                }
                Self::Ws(mut ws) => loop {
                    use tokio_tungstenite::tungstenite::Message;
                    match ws.next().await {
                        Some(Ok(Message::Close(frame))) => {
                            break Ended::Closed(frame.map(|f| f.code.into()));
                        }
                        Some(Ok(_)) => continue,
                        other => panic!("expected a close frame, got {other:?}"),
                    }
                },
                Self::Wt(mut session) => Ended::Session(session.rest().await.1),
            }
        };
        tokio::time::timeout(Duration::from_secs(5), rest)
            .await
            .expect("the stream's end within 5 s")
    }
}
