//! [`Peer`]: what the client of a session sends, as events: its control lines (on the one
//! unidirectional stream it may open), and its leaving.
//!
//! A page's `transport.close()` arrives as a failure of the session's stream calls, not of
//! the QUIC connection (which may stay open a while): so a call to accept a stream is always
//! pending, and its failure is how the client's leaving is seen at once.

use wtransport::{Connection, RecvStream, error::StreamReadError};

use super::MAX_CONTROL_LINE;
use crate::transport::control::Control;

/// What the client did.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// It sent a control line.
    Control(Control),
    /// It sent something that is not a control line: why, in words.
    Invalid(String),
    /// It closed the session, or its connection was lost.
    Gone,
}

/// The client's side of a session.
pub struct Peer {
    connection: Connection,
    control: ControlStream,
}

/// The client's control stream, once it has opened one.
enum ControlStream {
    /// Not opened yet.
    Awaited,
    /// Open: read line by line.
    Open(Lines),
    /// Finished (or reset) by the client: nothing more to read.
    Finished,
}

impl Peer {
    /// The client of the session on `connection`.
    pub fn new(connection: Connection) -> Self {
        Self {
            connection,
            control: ControlStream::Awaited,
        }
    }

    /// The next thing the client does. Cancel-safe: a line read in part is kept.
    pub async fn next(&mut self) -> Event {
        loop {
            let lines = match &mut self.control {
                ControlStream::Open(lines) => lines,
                ControlStream::Awaited | ControlStream::Finished => {
                    let Ok(stream) = self.connection.accept_uni().await else {
                        return Event::Gone;
                    };
                    // The first stream is the control stream; any other is left unread
                    // (dropping it asks the client to stop sending on it).
                    if matches!(self.control, ControlStream::Awaited) {
                        self.control = ControlStream::Open(Lines::new(stream));
                    }
                    continue;
                }
            };
            let read = tokio::select! {
                biased;
                accepted = self.connection.accept_uni() => match accepted {
                    Ok(_another) => continue,
                    Err(_) => return Event::Gone,
                },
                line = lines.next() => line,
            };
            match read {
                Ok(Some(line)) => {
                    return match Control::parse(&line) {
                        Ok(control) => Event::Control(control),
                        Err(json) => Event::Invalid(reason(&json)),
                    };
                }
                Ok(None) => self.control = ControlStream::Finished,
                Err(LineError::Gone) => return Event::Gone,
                Err(LineError::Invalid(why)) => return Event::Invalid(why.to_owned()),
            }
        }
    }
}

/// The words of [`Control::parse`]'s JSON error, for a close reason.
fn reason(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| json.to_owned())
}

/// Why no line could be read.
#[derive(Debug)]
enum LineError {
    /// The connection is gone.
    Gone,
    /// The bytes are not a line the server reads.
    Invalid(&'static str),
}

/// A stream read as lines of UTF-8 text, each at most [`MAX_CONTROL_LINE`] bytes.
struct Lines {
    stream: RecvStream,
    /// Bytes read and not yet handed over as a line.
    pending: Vec<u8>,
}

impl Lines {
    fn new(stream: RecvStream) -> Self {
        Self {
            stream,
            pending: Vec::new(),
        }
    }

    /// The next line that is not blank, without its line feed; `None` once the stream ends
    /// (a last line without its line feed counts). Cancel-safe.
    async fn next(&mut self) -> Result<Option<String>, LineError> {
        let mut buf = [0u8; 1024];
        loop {
            if let Some(at) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=at).collect();
                match text(&line[..at])? {
                    "" => continue,
                    line => return Ok(Some(line.to_owned())),
                }
            }
            if self.pending.len() > MAX_CONTROL_LINE {
                return Err(LineError::Invalid("a control line longer than 4096 bytes"));
            }
            match self.stream.read(&mut buf).await {
                Ok(Some(n)) => self.pending.extend_from_slice(&buf[..n]),
                // A reset stream's last bytes may be missing: they are not read as a line.
                Err(StreamReadError::Reset(_)) => return Ok(None),
                Ok(None) => {
                    let rest = std::mem::take(&mut self.pending);
                    return match text(&rest)? {
                        "" => Ok(None),
                        line => Ok(Some(line.to_owned())),
                    };
                }
                Err(_) => return Err(LineError::Gone),
            }
        }
    }
}

/// `line` as text, trimmed (a CR before the line feed is allowed).
fn text(line: &[u8]) -> Result<&str, LineError> {
    if line.len() > MAX_CONTROL_LINE {
        return Err(LineError::Invalid("a control line longer than 4096 bytes"));
    }
    std::str::from_utf8(line)
        .map(str::trim)
        .map_err(|_| LineError::Invalid("a control line that is not UTF-8"))
}
