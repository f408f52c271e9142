//! What every layer says of a stream: which [`Transport`] carries it, in which [`Encoding`],
//! and the [`Outcome`] it ended with. All are metric labels; [`Transport`] is also the one
//! list of transports that routes, the start log and "every transport" tests come from.

/// The wire format a stream is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `GET /stream`: chunked `text/plain`.
    Text,
    /// `GET /stream/sse`: Server-Sent Events.
    Sse,
    /// `GET /stream/ws`: WebSocket.
    Ws,
    /// `GET /stream/jsonl`: JSON Lines.
    Jsonl,
    /// `/stream/wt` over HTTP/3: WebTransport.
    Wt,
}

/// What a transport is called and where it is served.
struct About {
    label: &'static str,
    path: &'static str,
    scheme: &'static str,
}

impl Transport {
    /// Every transport, in metric-label order.
    pub const ALL: [Transport; 5] = [
        Transport::Text,
        Transport::Sse,
        Transport::Ws,
        Transport::Jsonl,
        Transport::Wt,
    ];

    /// One entry per transport: its label, its route and the URL scheme a client uses.
    const fn about(self) -> About {
        let (label, path, scheme) = match self {
            Transport::Text => ("text", "/stream", "http"),
            Transport::Sse => ("sse", "/stream/sse", "http"),
            Transport::Ws => ("ws", "/stream/ws", "ws"),
            Transport::Jsonl => ("jsonl", "/stream/jsonl", "http"),
            // A session on UDP; `GET http://…/stream/wt` tells a page how to open it.
            Transport::Wt => ("wt", "/stream/wt", "https"),
        };
        About {
            label,
            path,
            scheme,
        }
    }

    /// The `transport` label.
    pub const fn as_str(self) -> &'static str {
        self.about().label
    }

    /// The route that streams with it.
    pub const fn path(self) -> &'static str {
        self.about().path
    }

    /// The URL scheme a client opens it with on a plain listener (`http`, `ws`; `https`
    /// for WebTransport, always over TLS).
    pub const fn scheme(self) -> &'static str {
        self.about().scheme
    }

    /// Whether it travels over the HTTP listener (TCP), so through a reverse proxy too.
    /// WebTransport does not: it is HTTP/3 on the server's own UDP port.
    pub const fn over_tcp(self) -> bool {
        !matches!(self, Transport::Wt)
    }
}

/// How a stream's bytes are compressed on the wire: the `encoding` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Not compressed.
    Identity,
    /// `Content-Encoding: gzip`.
    Gzip,
    /// `Content-Encoding: br`.
    Br,
    /// `Content-Encoding: zstd`.
    Zstd,
    /// Raw deflate: the WebSocket's permessage-deflate.
    Deflate,
}

impl Encoding {
    /// Every encoding, in metric-label order.
    pub const ALL: [Encoding; 5] = [
        Encoding::Identity,
        Encoding::Gzip,
        Encoding::Br,
        Encoding::Zstd,
        Encoding::Deflate,
    ];

    /// The `encoding` label, which is also the HTTP content-coding's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
            Encoding::Deflate => "deflate",
        }
    }
}

/// How a stream ended: the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every chunk was sent.
    Completed,
    /// The client went away first.
    ClientGone,
    /// The server shut down.
    Shutdown,
    /// The client asked the stream to stop (a WebSocket or WebTransport `stop` action).
    Stopped,
    /// Refused before it opened: the client's share or the server's limit was taken.
    Rejected,
    /// The client broke the protocol (a WebSocket close 1002, 1003, 1007 or 1009; a
    /// WebTransport control line that is not an action) or stopped answering pings.
    ProtocolError,
    /// The client accepted no bytes for the stall timeout.
    Stalled,
}

impl Outcome {
    /// Every outcome, in metric-label order.
    pub const ALL: [Outcome; 7] = [
        Outcome::Completed,
        Outcome::ClientGone,
        Outcome::Shutdown,
        Outcome::Stopped,
        Outcome::Rejected,
        Outcome::ProtocolError,
        Outcome::Stalled,
    ];

    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::ClientGone => "client_gone",
            Outcome::Shutdown => "shutdown",
            Outcome::Stopped => "stopped",
            Outcome::Rejected => "rejected",
            Outcome::ProtocolError => "protocol_error",
            Outcome::Stalled => "stalled",
        }
    }
}
