//! [`Ending`]: every way a WebSocket stream ends, with the close frame it calls for and the
//! outcome it is counted with.

use tokio_tungstenite::tungstenite::{
    Error as WsError, Message, Utf8Bytes,
    error::ProtocolError,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

use super::inflate::Refused;
use crate::streams::Outcome;

/// Longest reason a close frame can carry (its payload is at most 125 bytes, 2 for the code).
const MAX_CLOSE_REASON: usize = 123;

/// Why the loop ended, which says how to close the socket and what to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Every chunk was sent.
    Done,
    /// The client sent `stop`.
    Stopped,
    /// The server is shutting down.
    Shutdown,
    /// The client sent a binary frame.
    Binary,
    /// The client sent a frame or message over [`MAX_INCOMING`](super::MAX_INCOMING),
    /// compressed or once inflated.
    TooBig,
    /// The client broke the framing rules (an unmasked frame, reserved bits, an unknown
    /// opcode, a bad continuation or control frame).
    Violation(ProtocolError),
    /// The client sent text that is not UTF-8.
    NotUtf8,
    /// The client sent a compressed message whose data does not inflate.
    Corrupt,
    /// The client sent a close frame: tungstenite has queued the answer.
    ClientClosed,
    /// The connection failed or hit EOF (also when its deadline found the client stalled).
    ClientGone,
    /// The peer stopped answering pings.
    Unresponsive,
}

impl From<Outcome> for Ending {
    /// How the stream's own ending ([`Next::End`](crate::streams::Next)) closes the socket.
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Completed => Ending::Done,
            _ => Ending::Shutdown,
        }
    }
}

impl Ending {
    /// What a socket error, read or write, means for the stream.
    pub fn of(err: WsError) -> Self {
        tracing::debug!(%err, "websocket error");
        match err {
            WsError::Capacity(_) => Ending::TooBig,
            WsError::Utf8(_) => Ending::NotUtf8,
            // EOF without a close frame: the peer just left.
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Ending::ClientGone,
            WsError::Protocol(violation) => Ending::Violation(violation),
            // What the reader under tungstenite refused of a compressed message.
            WsError::Io(err) => match Refused::of(&err) {
                Some(Refused::TooLarge) => Ending::TooBig,
                Some(Refused::Corrupt) => Ending::Corrupt,
                None => Ending::ClientGone,
            },
            _ => Ending::ClientGone,
        }
    }

    /// What the stream is counted as; `None` when the client went away, which the stream
    /// tells apart from a stall by its connection ([`Chunks`](crate::streams::Chunks)).
    pub fn outcome(&self) -> Option<Outcome> {
        Some(match self {
            Ending::Done => Outcome::Completed,
            Ending::Stopped => Outcome::Stopped,
            Ending::Shutdown => Outcome::Shutdown,
            Ending::Binary
            | Ending::TooBig
            | Ending::Violation(_)
            | Ending::NotUtf8
            | Ending::Corrupt
            | Ending::Unresponsive => Outcome::ProtocolError,
            Ending::ClientClosed => Outcome::ClientGone,
            Ending::ClientGone => return None,
        })
    }

    /// Our close frame, if one is due and the peer can still receive it.
    pub fn close_frame(&self) -> Option<Message> {
        let (code, reason) = match self {
            Ending::Done => (CloseCode::Normal, "done".into()),
            Ending::Stopped => (CloseCode::Normal, "stopped".into()),
            Ending::Shutdown => (CloseCode::Away, "server shutting down".into()),
            Ending::Binary => (
                CloseCode::Unsupported,
                "binary frames are not accepted".into(),
            ),
            Ending::TooBig => (
                CloseCode::Size,
                "frames and messages are limited to 4096 bytes".into(),
            ),
            Ending::Violation(violation) => (CloseCode::Protocol, reason(violation)),
            Ending::NotUtf8 => (CloseCode::Invalid, "text must be UTF-8".into()),
            Ending::Corrupt => (
                CloseCode::Protocol,
                "compressed data that does not inflate".into(),
            ),
            Ending::ClientClosed | Ending::ClientGone | Ending::Unresponsive => return None,
        };
        Some(Message::Close(Some(CloseFrame { code, reason })))
    }
}

/// tungstenite's words for a protocol violation, as a close frame's reason.
fn reason(violation: &ProtocolError) -> Utf8Bytes {
    let mut reason = violation.to_string();
    if reason.len() > MAX_CLOSE_REASON {
        reason = "protocol error".to_owned();
    }
    reason.into()
}

#[cfg(test)]
mod tests {
    use std::io;

    use tokio_tungstenite::tungstenite::error::CapacityError;

    use super::*;
    use crate::transport::ws::MAX_INCOMING;

    #[test]
    fn socket_errors_map_to_endings() {
        let cases = [
            (
                WsError::Io(io::Error::new(io::ErrorKind::TimedOut, "stalled")),
                Ending::ClientGone,
            ),
            (
                WsError::Io(io::ErrorKind::ConnectionReset.into()),
                Ending::ClientGone,
            ),
            (
                WsError::Capacity(CapacityError::MessageTooLong {
                    size: 5000,
                    max_size: MAX_INCOMING,
                }),
                Ending::TooBig,
            ),
            (WsError::Utf8("bad".to_owned()), Ending::NotUtf8),
            (WsError::Io(Refused::TooLarge.into()), Ending::TooBig),
            (WsError::Io(Refused::Corrupt.into()), Ending::Corrupt),
            (
                WsError::Io(io::Error::new(io::ErrorKind::InvalidData, "other")),
                Ending::ClientGone,
            ),
            (
                WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake),
                Ending::ClientGone,
            ),
            (
                WsError::Protocol(ProtocolError::FragmentedControlFrame),
                Ending::Violation(ProtocolError::FragmentedControlFrame),
            ),
            (WsError::ConnectionClosed, Ending::ClientGone),
        ];
        for (err, ending) in cases {
            let name = err.to_string();
            assert_eq!(Ending::of(err), ending, "{name}");
        }
    }

    #[test]
    fn close_reasons_fit_in_a_close_frame() {
        let violations = [
            ProtocolError::UnmaskedFrameFromClient,
            ProtocolError::NonZeroReservedBits,
            ProtocolError::FragmentedControlFrame,
            ProtocolError::ControlFrameTooBig,
            ProtocolError::UnknownControlFrameType(11),
            ProtocolError::UnknownDataFrameType(3),
            ProtocolError::UnexpectedContinueFrame,
            ProtocolError::InvalidCloseSequence,
        ];
        let endings = [
            Ending::Done,
            Ending::Shutdown,
            Ending::TooBig,
            Ending::NotUtf8,
            Ending::Corrupt,
        ]
        .into_iter()
        .chain(violations.into_iter().map(Ending::Violation));
        for ending in endings {
            let Some(Message::Close(Some(frame))) = ending.close_frame() else {
                panic!("{ending:?}: no close frame");
            };
            assert!(frame.reason.len() <= MAX_CLOSE_REASON, "{ending:?}");
            assert!(!frame.reason.is_empty(), "{ending:?}");
        }
    }
}
