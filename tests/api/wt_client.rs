//! A WebTransport client of `/stream/wt` (wtransport's), used as a page uses the browser's:
//! `GET /stream/wt` for the URL and the certificate's hash, then the session, its chunk
//! stream read line by line, and a control stream written line by line.

use std::time::Duration;

use serde::Deserialize;
use wtransport::{
    ClientConfig, Connection, Endpoint, RecvStream, SendStream, VarInt,
    endpoint::endpoint_side::Client,
    error::{ConnectingError, ConnectionError, StreamReadError},
    tls::Sha256Digest,
};

use crate::{clients::Refused, helpers::TestApp};

/// What `GET /stream/wt` answers.
#[derive(Debug, Deserialize)]
pub struct Connect {
    /// The session's URL.
    pub url: String,
    /// The certificate's hashes.
    #[serde(rename = "serverCertificateHashes")]
    pub hashes: Vec<CertificateHash>,
}

/// One entry of `serverCertificateHashes`.
#[derive(Debug, Deserialize)]
pub struct CertificateHash {
    /// `sha-256`.
    pub algorithm: String,
    /// The hash, base64.
    pub value: String,
}

impl Connect {
    /// `GET /stream/wt?{query}`, which must answer 200.
    pub async fn get(app: &TestApp, query: &str) -> Self {
        let resp = app.get(&format!("/stream/wt?{query}")).await;
        assert_eq!(resp.status(), 200, "GET /stream/wt?{query}");
        resp.json().await.expect("the session's JSON")
    }

    /// The hashes as bytes (each must be a base64 SHA-256).
    pub fn digests(&self) -> Vec<[u8; 32]> {
        self.hashes
            .iter()
            .map(|hash| {
                assert_eq!(hash.algorithm, "sha-256");
                let raw = data_encoding::BASE64
                    .decode(hash.value.as_bytes())
                    .expect("a base64 hash");
                raw.try_into().expect("32 bytes: a SHA-256")
            })
            .collect()
    }
}

/// How a session ended for its client.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// The server closed the session: its code and reason.
    Server(u64, String),
    /// The connection was lost otherwise (timed out, reset): in words.
    Other(String),
}

impl From<ConnectionError> for Closed {
    fn from(err: ConnectionError) -> Self {
        match err {
            ConnectionError::ApplicationClosed(close) => Closed::Server(
                close.code().into_inner(),
                String::from_utf8_lossy(close.reason()).into_owned(),
            ),
            other => Closed::Other(other.to_string()),
        }
    }
}

/// How the chunk stream ended for its client.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// Finished by the server after its last line.
    Finished,
    /// Reset by the server: the code as received (HTTP/3-encoded).
    Reset(u64),
    /// The session closed before the stream ended.
    Closed(Closed),
}

/// An open session.
pub struct WtSession {
    /// The session.
    pub connection: Connection,
    /// The chunk stream, once accepted.
    chunks: Option<RecvStream>,
    /// Bytes of the chunk stream read and not yet handed out as a line.
    pending: Vec<u8>,
    /// The control stream, once opened.
    control: Option<SendStream>,
    /// Kept so that the client's socket lives as long as the session.
    _endpoint: Endpoint<Client>,
}

impl Drop for WtSession {
    /// Closes the session, as a page that goes away does. (Dropping wtransport's handles
    /// alone would leave its connection open until it times out.)
    fn drop(&mut self) {
        self.connection.close(VarInt::from_u32(0), b"");
    }
}

impl WtSession {
    /// Opens the session `GET /stream/wt?{query}` describes, trusting the certificate by the
    /// hash it gives (as a page does).
    pub async fn open(app: &TestApp, query: &str) -> Result<Self, ConnectingError> {
        let connect = Connect::get(app, query).await;
        Self::connect(&connect.url, &connect.digests()).await
    }

    /// Opens the session `GET /stream/wt?{query}` describes, or returns that GET's refusal
    /// (429, 503) after checking that the session itself is refused too, at the address the
    /// server serves sessions on (trusting any certificate, as the refusal names none).
    pub async fn open_or_refused(app: &TestApp, query: &str) -> Result<Self, Refused> {
        let resp = app.get(&format!("/stream/wt?{query}")).await;
        if resp.status() == 200 {
            let connect: Connect = resp.json().await.expect("the session's JSON");
            return Ok(Self::connect(&connect.url, &connect.digests())
                .await
                .expect("a session"));
        }
        let refused = Refused::of(resp).await;
        let addr = app.wt.expect("WebTransport served");
        let url = format!("https://{addr}/stream/wt?{query}");
        let config = ClientConfig::builder()
            .with_bind_default()
            .with_no_cert_validation()
            .build();
        match Self::connect_with(config, &url).await {
            Err(ConnectingError::SessionRejected) => Err(refused),
            Err(err) => panic!("{url}: {err}"),
            Ok(_) => panic!("{url}: a session opened where GET was refused: {refused:?}"),
        }
    }

    /// Opens a session at `url`, trusting only a certificate with one of `hashes`.
    pub async fn connect(url: &str, hashes: &[[u8; 32]]) -> Result<Self, ConnectingError> {
        let config = ClientConfig::builder()
            .with_bind_default()
            .with_server_certificate_hashes(hashes.iter().copied().map(Sha256Digest::new))
            .build();
        Self::connect_with(config, url).await
    }

    /// Opens a session at `url` with the client `config`.
    pub async fn connect_with(config: ClientConfig, url: &str) -> Result<Self, ConnectingError> {
        let endpoint = Endpoint::client(config).expect("a client endpoint");
        let connect = endpoint.connect(url);
        let connection = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .expect("the session's answer within 5 s")?;
        Ok(Self {
            connection,
            chunks: None,
            pending: Vec::new(),
            control: None,
            _endpoint: endpoint,
        })
    }

    /// The chunk stream: the first unidirectional stream the server opens.
    async fn chunks(&mut self) -> Result<&mut RecvStream, Closed> {
        if self.chunks.is_none() {
            let accepted = self.connection.accept_uni().await.map_err(Closed::from)?;
            self.chunks = Some(accepted);
        }
        Ok(self.chunks.as_mut().expect("just accepted"))
    }

    /// The next line of the chunk stream (at most 5 s), or how the stream ended.
    pub async fn line(&mut self) -> Result<String, StreamEnd> {
        let next = async {
            loop {
                if let Some(at) = self.pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = self.pending.drain(..=at).collect();
                    return Ok(String::from_utf8(line).expect("UTF-8 lines"));
                }
                let mut buf = [0u8; 4096];
                let chunks = self.chunks().await.map_err(StreamEnd::Closed)?;
                match chunks.read(&mut buf).await {
                    Ok(Some(n)) => self.pending.extend_from_slice(&buf[..n]),
                    Ok(None) => {
                        assert!(self.pending.is_empty(), "a last line without its line feed");
                        return Err(StreamEnd::Finished);
                    }
                    Err(StreamReadError::Reset(code)) => {
                        return Err(StreamEnd::Reset(code.into_inner()));
                    }
                    Err(StreamReadError::NotConnected) => {
                        let closed = self.connection.closed().await;
                        return Err(StreamEnd::Closed(closed.into()));
                    }
                    Err(err) => panic!("reading the chunk stream: {err}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("a line or the stream's end within 5 s")
    }

    /// The next chunk's index, checking the line is the chunk's JSON.
    pub async fn index(&mut self) -> Result<u64, StreamEnd> {
        let line = self.line().await?;
        let chunk: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        let index = chunk["index"].as_u64().expect("an index");
        assert_eq!(
            line,
            format!("{{\"index\":{index},\"text\":\"Data Chunk {index}\"}}\n")
        );
        Ok(index)
    }

    /// Every chunk's index to the end of the chunk stream, and how it ended.
    pub async fn rest(&mut self) -> (Vec<u64>, StreamEnd) {
        let mut indexes = Vec::new();
        loop {
            match self.index().await {
                Ok(index) => indexes.push(index),
                Err(end) => return (indexes, end),
            }
        }
    }

    /// Writes `bytes` on the control stream, opening it first if need be.
    pub async fn send_control(&mut self, bytes: &[u8]) {
        if self.control.is_none() {
            let opening = self.connection.open_uni().await.expect("open a stream");
            self.control = Some(opening.await.expect("the control stream"));
        }
        let control = self.control.as_mut().expect("just opened");
        control.write_all(bytes).await.expect("a control line sent");
    }

    /// Finishes the control stream (opened by [`WtSession::send_control`]).
    pub async fn finish_control(&mut self) {
        let control = self.control.as_mut().expect("a control stream");
        control.finish().await.expect("the control stream finished");
    }

    /// Sends `{"action":"<action>"}` and a line feed.
    pub async fn action(&mut self, action: &str) {
        let line = format!("{{\"action\":\"{action}\"}}\n");
        self.send_control(line.as_bytes()).await;
    }

    /// Waits (at most 5 s) for the server to close the session: its code and reason.
    pub async fn closed(&self) -> Closed {
        // The session's close arrives through the stream calls as well as the connection's.
        let closed = async {
            match self.connection.accept_uni().await {
                Err(err) => Closed::from(err),
                Ok(_) => Closed::from(self.connection.closed().await),
            }
        };
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .expect("the session closed within 5 s")
    }

    /// Stops reading the chunk stream: a `STOP_SENDING` with `code`.
    pub async fn stop_chunks(&mut self, code: u32) {
        self.chunks().await.expect("the chunk stream");
        let chunks = self.chunks.take().expect("accepted");
        chunks.stop(VarInt::from_u32(code));
    }
}
