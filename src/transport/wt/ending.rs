//! [`Ending`]: every way a WebTransport session ends, with the code it is closed with and the
//! outcome it is counted with.

use wtransport::VarInt;

use crate::streams::Outcome;

/// The application codes a session is closed with, and its chunk stream reset with: the
/// contract's, documented in the README and the operation's description. Each fits a byte,
/// as some browsers' `streamErrorCode` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// Every chunk was sent, or the client asked to stop: the chunk stream was finished.
    Done = 0,
    /// The server is shutting down: reconnect (to it or another instance) and resume with
    /// `start` at the index after the last chunk received.
    GoingAway = 1,
    /// The client's control stream held something other than the three actions (the reason
    /// says what), or a line over [`MAX_CONTROL_LINE`](super::MAX_CONTROL_LINE).
    ProtocolError = 2,
    /// The client accepted no bytes for the stall timeout.
    Stalled = 3,
}

/// The first HTTP/3 error code of the range WebTransport's application codes map into
/// (draft-ietf-webtrans-http3, "Resetting Data Streams"): what a browser turns back into
/// the `streamErrorCode` of a reset stream.
const FIRST_HTTP3_CODE: u64 = 0x52e4_a40f_a8db;

impl Code {
    /// The code a session is closed with.
    pub fn session(self) -> VarInt {
        VarInt::from_u32(self as u32)
    }

    /// The code a stream is reset with: the application code in its HTTP/3 encoding, every
    /// 31st value of the range skipped (those are reserved for greasing).
    pub fn stream(self) -> VarInt {
        let code = u64::from(self as u8);
        let http3 = FIRST_HTTP3_CODE + code + code / 0x1e;
        VarInt::try_from_u64(http3).expect("the range is well within a varint")
    }

    /// The application code a stream reset with `http3` carries, if it is one.
    pub fn of_stream(http3: u64) -> Option<u64> {
        let offset = http3.checked_sub(FIRST_HTTP3_CODE)?;
        ((offset + 1) % 0x1f != 0).then(|| offset - offset / 0x1f)
    }
}

/// Why a session ended, which says how to close it and what to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Every chunk was sent.
    Done,
    /// The client sent `stop`.
    Stopped,
    /// The server is shutting down.
    Shutdown,
    /// The client broke the control protocol; the reason is for the close.
    Invalid(String),
    /// The client accepted no bytes for the stall timeout.
    Stalled,
    /// The client closed the session, stopped the chunk stream, or its connection was lost.
    ClientGone,
}

impl From<Outcome> for Ending {
    /// How the stream's own ending ([`Next::End`](crate::streams::Next)) closes the session.
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Completed => Ending::Done,
            _ => Ending::Shutdown,
        }
    }
}

impl Ending {
    /// What the stream is counted as; `None` when the client went away.
    pub fn outcome(&self) -> Option<Outcome> {
        Some(match self {
            Ending::Done => Outcome::Completed,
            Ending::Stopped => Outcome::Stopped,
            Ending::Shutdown => Outcome::Shutdown,
            Ending::Invalid(_) => Outcome::ProtocolError,
            Ending::Stalled => Outcome::Stalled,
            Ending::ClientGone => return None,
        })
    }

    /// The code and reason the session is closed with.
    pub fn close(&self) -> (Code, &str) {
        match self {
            Ending::Done => (Code::Done, "done"),
            Ending::Stopped => (Code::Done, "stopped"),
            Ending::Shutdown => (Code::GoingAway, "server shutting down"),
            Ending::Invalid(reason) => (Code::ProtocolError, reason),
            Ending::Stalled => (Code::Stalled, "stalled"),
            Ending::ClientGone => (Code::Done, ""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_codes_round_trip_through_their_http3_encoding() {
        for code in [
            Code::Done,
            Code::GoingAway,
            Code::ProtocolError,
            Code::Stalled,
        ] {
            let http3 = code.stream().into_inner();
            assert_eq!(Code::of_stream(http3), Some(code as u64), "{code:?}");
        }
        // The draft's own examples: 0 is the first code; 0x1e is the first past a skip.
        assert_eq!(Code::of_stream(FIRST_HTTP3_CODE), Some(0));
        assert_eq!(Code::of_stream(FIRST_HTTP3_CODE + 0x1f), Some(0x1e));
        assert_eq!(
            Code::of_stream(FIRST_HTTP3_CODE + 0x1e),
            None,
            "a greasing value"
        );
        assert_eq!(Code::of_stream(0x100), None);
    }

    #[test]
    fn every_ending_but_a_client_leaving_is_counted_as_itself() {
        let cases = [
            (Ending::Done, Some(Outcome::Completed), Code::Done),
            (Ending::Stopped, Some(Outcome::Stopped), Code::Done),
            (Ending::Shutdown, Some(Outcome::Shutdown), Code::GoingAway),
            (
                Ending::Invalid("bad".into()),
                Some(Outcome::ProtocolError),
                Code::ProtocolError,
            ),
            (Ending::Stalled, Some(Outcome::Stalled), Code::Stalled),
            (Ending::ClientGone, None, Code::Done),
        ];
        for (ending, outcome, code) in cases {
            assert_eq!(ending.outcome(), outcome, "{ending:?}");
            assert_eq!(ending.close().0, code, "{ending:?}");
        }
    }
}
