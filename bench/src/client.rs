//! Load clients written for throughput: raw HTTP/1.1 over a tokio `TcpStream`, a chunked
//! decoder that hands the body bytes to a [`Sink`], and sinks that count text lines, SSE
//! events and WebSocket messages without allocating.
//!
//! The clients share two cores with the server under test, so they must cost far less per
//! chunk than any server: no per-chunk allocation, no parsing beyond what counting needs.
//! A compressed stream is decoded as its bytes arrive ([`Gunzip`] for a gzip body, the
//! [`WsCounter`]'s inflater for permessage-deflate messages), so that a chunk counts when
//! it could be read, not when its compressed bytes came.

use std::{io, net::SocketAddr, ops::ControlFlow, time::Instant};

use chunkstream_zlib::Inflate;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// Size of each connection's read buffer.
const READ_BUF: usize = 256 * 1024;
/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// What consumes the body bytes of a response.
pub trait Sink {
    /// Takes the next body bytes; `Break(used)` stops reading after the first `used`
    /// bytes: the rest stays unread, for the next call (of this sink or another).
    fn data(&mut self, bytes: &[u8]) -> ControlFlow<usize>;

    /// Whether the sink holds bytes it has taken but not counted yet (a decoder whose
    /// reader stopped mid-way): the next read hands it `&[]` first, before waiting.
    fn pending(&self) -> bool {
        false
    }
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length`.
    Length(u64),
    /// Until the connection closes (also a `101` upgrade: the frames follow).
    UntilClose,
    /// No body (`204`, `304`).
    Empty,
}

/// A parsed response head.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// The body's `Content-Encoding`.
    pub encoding: ContentEncoding,
    /// Whether the server agreed to `permessage-deflate` (`Sec-WebSocket-Extensions`).
    pub ws_deflate: bool,
}

/// A response body's content coding, as far as the clients care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentEncoding {
    /// None (no `Content-Encoding`, or `identity`).
    #[default]
    Identity,
    /// `gzip` (or `x-gzip`).
    Gzip,
    /// Any other: the clients cannot decode it.
    Other,
}

/// How reading a body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// The body ended (or the peer closed an until-close body).
    Complete,
    /// The sink said stop.
    Stopped,
    /// The deadline passed.
    Deadline,
}

/// One client connection with its read buffer.
pub struct Conn {
    stream: TcpStream,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// The body being read: its kind, its chunked decoder, its bytes left (by length).
    kind: BodyKind,
    chunked: Chunked,
    left: u64,
    /// Bytes of response bodies read so far, as they came on the wire: with the chunked
    /// encoding's framing, and for a WebSocket every frame byte after the upgrade.
    pub wire_bytes: u64,
    /// The last response head read.
    pub head: Option<Head>,
}

impl Conn {
    /// Connects to `addr` (with `TCP_NODELAY`: requests are single small writes).
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        Self::connect_with(addr, false, READ_BUF).await
    }

    /// Connects with a `buf_size` read buffer; with `reset_on_close`, closing sends a RST
    /// (SO_LINGER 0) instead of leaving the client port in TIME_WAIT — for scenarios that
    /// open thousands of connections.
    pub async fn connect_with(
        addr: SocketAddr,
        reset_on_close: bool,
        buf_size: usize,
    ) -> io::Result<Self> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if reset_on_close {
            // Zero linger: close never blocks, it resets.
            socket.set_zero_linger()?;
        }
        socket.set_nodelay(true)?;
        let stream = socket.connect(addr).await?;
        Ok(Self {
            stream,
            buf: vec![0; buf_size].into_boxed_slice(),
            pos: 0,
            len: 0,
            kind: BodyKind::Empty,
            chunked: Chunked::default(),
            left: 0,
            wire_bytes: 0,
            head: None,
        })
    }

    /// Writes all of `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Sends `GET {path_and_query}` as HTTP/1.1 with `extra` header lines (each ending
    /// in `\r\n`).
    pub async fn get(&mut self, path_and_query: &str, extra: &str) -> io::Result<()> {
        let request = format!("GET {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n");
        self.send(request.as_bytes()).await
    }

    /// Reads more bytes into the buffer; EOF is `UnexpectedEof`.
    async fn fill(&mut self) -> io::Result<()> {
        if self.pos == self.len {
            self.pos = 0;
            self.len = 0;
        } else if self.len == self.buf.len() {
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.pos = 0;
        }
        let n = self.stream.read(&mut self.buf[self.len..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.len += n;
        Ok(())
    }

    /// Reads and parses a response head.
    pub async fn read_head(&mut self) -> io::Result<Head> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf[self.pos..self.len]) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = response.code.unwrap_or(0);
                    let mut body = BodyKind::UntilClose;
                    let mut encoding = ContentEncoding::Identity;
                    let mut ws_deflate = false;
                    for h in response.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-encoding") {
                            encoding = content_encoding(h.value);
                        } else if h.name.eq_ignore_ascii_case("sec-websocket-extensions") {
                            // Only what the server agreed to; its parameters change nothing
                            // for a decoder with the largest window (see `WsCounter`).
                            ws_deflate |= h.value.split(|&b| b == b',').any(|ext| {
                                let name = ext.split(|&b| b == b';').next().unwrap_or_default();
                                name.trim_ascii()
                                    .eq_ignore_ascii_case(b"permessage-deflate")
                            });
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                            && h.value.eq_ignore_ascii_case(b"chunked")
                        {
                            body = BodyKind::Chunked;
                        } else if h.name.eq_ignore_ascii_case("content-length") {
                            let len = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse().ok())
                                .ok_or_else(|| invalid("bad content-length"))?;
                            body = BodyKind::Length(len);
                        }
                    }
                    if status == 204 || status == 304 {
                        body = BodyKind::Empty;
                    }
                    self.pos += n;
                    self.kind = body;
                    self.chunked = Chunked::default();
                    self.left = match body {
                        BodyKind::Length(n) => n,
                        BodyKind::Empty => 0,
                        _ => u64::MAX,
                    };
                    let head = Head {
                        status,
                        encoding,
                        ws_deflate,
                    };
                    self.head = Some(head);
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) if self.len - self.pos < MAX_HEAD => {
                    self.fill().await?
                }
                Ok(httparse::Status::Partial) => return Err(invalid("response head too large")),
                Err(e) => return Err(invalid(&format!("bad response head: {e}"))),
            }
        }
    }

    /// Reads the body of the last head into `sink`, until it ends, the sink stops, or
    /// `deadline` passes (checked after every read). After a stop, calling it again goes on
    /// where it stopped.
    pub async fn read_body(
        &mut self,
        sink: &mut impl Sink,
        deadline: Option<Instant>,
    ) -> io::Result<BodyEnd> {
        if self.kind == BodyKind::Empty {
            return Ok(BodyEnd::Complete);
        }
        loop {
            // What a decoding sink took but its reader did not count yet goes first: no
            // more bytes may ever come.
            if sink.pending() && sink.data(&[]).is_break() {
                return Ok(BodyEnd::Stopped);
            }
            if self.pos < self.len {
                let input = &self.buf[self.pos..self.len];
                let (used, flow) = match self.kind {
                    BodyKind::Chunked => self.chunked.feed(input, sink)?,
                    _ => {
                        let n = input
                            .len()
                            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                        let (n, flow) = match sink.data(&input[..n]) {
                            ControlFlow::Continue(()) => (n, Flow::More),
                            ControlFlow::Break(used) => (used, Flow::Stop),
                        };
                        self.left -= n as u64;
                        let flow = match flow {
                            Flow::More if self.left == 0 => Flow::Done,
                            flow => flow,
                        };
                        (n, flow)
                    }
                };
                self.pos += used;
                self.wire_bytes += used as u64;
                match flow {
                    Flow::Done => {
                        self.kind = BodyKind::Empty;
                        return Ok(BodyEnd::Complete);
                    }
                    Flow::Stop => return Ok(BodyEnd::Stopped),
                    Flow::More => {}
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(BodyEnd::Deadline);
            }
            match self.fill().await {
                Ok(()) => {}
                Err(e)
                    if e.kind() == io::ErrorKind::UnexpectedEof
                        && self.kind == BodyKind::UntilClose =>
                {
                    self.kind = BodyKind::Empty;
                    return Ok(BodyEnd::Complete);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// What the decoder says after a slice of input.
enum Flow {
    More,
    Stop,
    Done,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// A `Content-Encoding` value as the clients see it.
fn content_encoding(value: &[u8]) -> ContentEncoding {
    let value = value.trim_ascii();
    if value.eq_ignore_ascii_case(b"gzip") || value.eq_ignore_ascii_case(b"x-gzip") {
        ContentEncoding::Gzip
    } else if value.is_empty() || value.eq_ignore_ascii_case(b"identity") {
        ContentEncoding::Identity
    } else {
        ContentEncoding::Other
    }
}

/// Where the chunked decoder is.
#[derive(Debug, Default, Clone, Copy)]
enum ChunkState {
    /// Reading the hex size.
    #[default]
    Size,
    /// Skipping a chunk extension up to its `\n`.
    Extension,
    /// Expecting the `\n` after the size line's `\r`.
    SizeLf,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the `\r` after the data.
    DataCr,
    /// Expecting the `\n` after the data.
    DataLf,
    /// After the last chunk, at the start of a trailer line (empty: the end).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// Expecting the final `\n`.
    EndLf,
}

/// An incremental `Transfer-Encoding: chunked` decoder.
#[derive(Debug, Default)]
struct Chunked {
    state: ChunkState,
    size: u64,
}

impl Chunked {
    /// Decodes from `input`, handing data to `sink`; returns the bytes used and whether
    /// to go on.
    fn feed(&mut self, input: &[u8], sink: &mut impl Sink) -> io::Result<(usize, Flow)> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                ChunkState::Size => {
                    i += 1;
                    match b {
                        b'0'..=b'9' => self.size = self.size * 16 + u64::from(b - b'0'),
                        b'a'..=b'f' => self.size = self.size * 16 + u64::from(b - b'a' + 10),
                        b'A'..=b'F' => self.size = self.size * 16 + u64::from(b - b'A' + 10),
                        b'\r' => self.state = ChunkState::SizeLf,
                        b';' | b' ' | b'\t' => self.state = ChunkState::Extension,
                        _ => return Err(invalid("bad chunk size")),
                    }
                }
                ChunkState::Extension => match memchr_nl(&input[i..]) {
                    Some(at) => {
                        i += at;
                        self.state = ChunkState::SizeLf;
                    }
                    None => i = input.len(),
                },
                ChunkState::SizeLf => {
                    i += 1;
                    if b != b'\n' {
                        return Err(invalid("bad chunk size line"));
                    }
                    self.state = if self.size == 0 {
                        ChunkState::TrailerStart
                    } else {
                        ChunkState::Data(self.size)
                    };
                    self.size = 0;
                }
                ChunkState::Data(left) => {
                    let n = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    let (n, stop) = match sink.data(&input[i..i + n]) {
                        ControlFlow::Continue(()) => (n, false),
                        ControlFlow::Break(used) => (used, true),
                    };
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data(left)
                    };
                    if stop {
                        return Ok((i, Flow::Stop));
                    }
                }
                ChunkState::DataCr => {
                    i += 1;
                    if b != b'\r' {
                        return Err(invalid("chunk data longer than its size"));
                    }
                    self.state = ChunkState::DataLf;
                }
                ChunkState::DataLf => {
                    i += 1;
                    if b != b'\n' {
                        return Err(invalid("chunk data longer than its size"));
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::TrailerStart => {
                    i += 1;
                    self.state = match b {
                        b'\r' => ChunkState::EndLf,
                        b'\n' => return Ok((i, Flow::Done)),
                        _ => ChunkState::Trailer,
                    };
                }
                ChunkState::Trailer => {
                    i += 1;
                    if b == b'\n' {
                        self.state = ChunkState::TrailerStart;
                    }
                }
                ChunkState::EndLf => {
                    i += 1;
                    return if b == b'\n' {
                        Ok((i, Flow::Done))
                    } else {
                        Err(invalid("bad end of chunked body"))
                    };
                }
            }
        }
        Ok((i, Flow::More))
    }
}

/// Position of the first `\n` in `bytes`.
fn memchr_nl(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// Decodes a gzip body (`Content-Encoding: gzip`) as it arrives and hands what it decoded
/// to a reader (a [`Sink`]) at once: the gzip header (10 bytes), raw deflate, and the
/// 8-byte trailer, which is left unchecked.
pub struct Gunzip {
    inflate: Inflate,
    /// Header bytes seen, up to [`GZIP_HEADER`].
    header_seen: usize,
    /// The last decoded bytes, reused from piece to piece.
    out: Vec<u8>,
    /// How much of `out` the reader has taken: less than all when it stopped.
    taken: usize,
    /// Decoded bytes so far.
    pub decoded_bytes: u64,
    /// Why decoding stopped for good, if it did.
    pub error: Option<&'static str>,
}

/// A gzip header without optional fields (`FLG` 0), as zlib and async-compression write it.
const GZIP_HEADER: usize = 10;

impl Gunzip {
    /// A decoder at the start of a gzip body.
    pub fn new() -> Self {
        Self {
            // 15 bits: the largest window, so any gzip encoder's output decodes.
            inflate: Inflate::raw(15).expect("zlib allocates a decompressor"),
            header_seen: 0,
            out: Vec::new(),
            taken: 0,
            decoded_bytes: 0,
            error: None,
        }
    }

    /// Whether decoded bytes wait for the reader.
    pub fn pending(&self) -> bool {
        self.taken < self.out.len()
    }

    /// Decodes `input` (what the reader stopped on first) into `reader`; `Break` when the
    /// reader stopped (all of `input` is taken then; the rest waits in the decoder) or
    /// the data is not gzip.
    pub fn feed(&mut self, input: &[u8], reader: &mut impl Sink) -> ControlFlow<usize> {
        if self.pending() {
            match reader.data(&self.out[self.taken..]) {
                ControlFlow::Continue(()) => self.taken = self.out.len(),
                ControlFlow::Break(used) => {
                    self.taken += used;
                    return ControlFlow::Break(0);
                }
            }
        }
        if self.error.is_some() {
            return ControlFlow::Break(0);
        }
        let whole = input.len();
        let mut input = input;
        while self.header_seen < GZIP_HEADER {
            let Some((&byte, rest)) = input.split_first() else {
                return ControlFlow::Continue(());
            };
            let expected = match self.header_seen {
                0 => Some(0x1f),
                1 => Some(0x8b),
                // The method (deflate), then the flags: none.
                2 => Some(8),
                3 => Some(0),
                _ => None,
            };
            if expected.is_some_and(|e| e != byte) {
                self.error = Some("not a gzip header without optional fields");
                return ControlFlow::Break(0);
            }
            self.header_seen += 1;
            input = rest;
        }
        if input.is_empty() {
            return ControlFlow::Continue(());
        }
        self.out.clear();
        self.taken = 0;
        if self
            .inflate
            .inflate(input, &mut self.out, usize::MAX)
            .is_err()
        {
            self.error = Some("invalid deflate data in a gzip body");
            return ControlFlow::Break(0);
        }
        self.decoded_bytes += self.out.len() as u64;
        match reader.data(&self.out) {
            ControlFlow::Continue(()) => {
                self.taken = self.out.len();
                ControlFlow::Continue(())
            }
            ControlFlow::Break(used) => {
                self.taken = used;
                // The input went into the decoder whole: none of it is left to read again.
                ControlFlow::Break(whole)
            }
        }
    }
}

impl std::fmt::Debug for Gunzip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gunzip")
            .field("decoded_bytes", &self.decoded_bytes)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Default for Gunzip {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts `\n`: the lines of `/stream`. Optionally records when each arrived, and stops
/// after `stop_after` lines (for held, paced streams).
#[derive(Debug, Default)]
pub struct LineCounter {
    /// Lines seen.
    pub lines: u64,
    /// Arrival times, when recording.
    pub arrivals: Option<Vec<Instant>>,
    /// Stop after this many lines (0: never).
    pub stop_after: u64,
}

impl Sink for LineCounter {
    fn data(&mut self, bytes: &[u8]) -> ControlFlow<usize> {
        if self.arrivals.is_none() && self.stop_after == 0 {
            // A plain filter-count: the compiler vectorises it, several GB/s on one core.
            self.lines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            return ControlFlow::Continue(());
        }
        let mut i = 0;
        while let Some(at) = memchr_nl(&bytes[i..]) {
            i += at + 1;
            self.lines += 1;
            if let Some(arrivals) = self.arrivals.as_mut() {
                arrivals.push(Instant::now());
            }
            if self.lines == self.stop_after {
                return ControlFlow::Break(i);
            }
        }
        ControlFlow::Continue(())
    }
}

/// Keeps the whole body (for small answers such as `/metrics`).
#[derive(Debug, Default)]
pub struct Collect(pub Vec<u8>);

impl Sink for Collect {
    fn data(&mut self, bytes: &[u8]) -> ControlFlow<usize> {
        self.0.extend_from_slice(bytes);
        ControlFlow::Continue(())
    }
}

/// Stops at the first body byte: the time to first chunk of `/stream`.
#[derive(Debug, Default)]
pub struct FirstByte;

impl Sink for FirstByte {
    fn data(&mut self, bytes: &[u8]) -> ControlFlow<usize> {
        if bytes.is_empty() {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(0)
        }
    }
}

/// Counts SSE events that carry an id (`id:` at a line start): chunk events, not
/// `retry`, `end` or keep-alive comments. Optionally records when each arrived, and stops
/// after `stop_after` events.
#[derive(Debug, Default)]
pub struct SseCounter {
    /// Bytes of `id:` matched at the current line start; 3 when matched or mismatched.
    matched: u8,
    /// Events seen.
    pub events: u64,
    /// Arrival times, when recording.
    pub arrivals: Option<Vec<Instant>>,
    /// Stop after this many events (0: never).
    pub stop_after: u64,
}

const ID_PREFIX: &[u8; 3] = b"id:";
/// `matched` when the current line is decided (matched or not an id line).
const DECIDED: u8 = 3;

impl Sink for SseCounter {
    fn data(&mut self, bytes: &[u8]) -> ControlFlow<usize> {
        let mut i = 0;
        loop {
            while self.matched < DECIDED && i < bytes.len() {
                if bytes[i] == ID_PREFIX[usize::from(self.matched)] {
                    self.matched += 1;
                    i += 1;
                    if self.matched == DECIDED {
                        self.events += 1;
                        if let Some(arrivals) = self.arrivals.as_mut() {
                            arrivals.push(Instant::now());
                        }
                        if self.events == self.stop_after {
                            return ControlFlow::Break(i);
                        }
                    }
                } else {
                    self.matched = DECIDED;
                }
            }
            match memchr_nl(&bytes[i..]) {
                Some(at) => {
                    i += at + 1;
                    self.matched = 0;
                }
                None => return ControlFlow::Continue(()),
            }
        }
    }
}

/// Counts server-to-client WebSocket messages (unmasked frames) after the upgrade; with
/// permessage-deflate agreed, inflates each compressed message (RSV1) as its payload arrives
/// and counts it once it has decoded whole.
#[derive(Default)]
pub struct WsCounter {
    header: [u8; 14],
    header_len: usize,
    header_need: usize,
    payload_left: u64,
    opcode: u8,
    /// Whether the frame being read ends its message.
    fin: bool,
    /// Whether the message being read is compressed (RSV1 on its first frame).
    compressed: bool,
    /// The decompressor of the server's messages, once permessage-deflate is agreed: one
    /// for the whole connection, since the server may keep its context between messages.
    inflate: Option<Inflate>,
    /// Scratch for inflated bytes.
    out: Vec<u8>,
    /// Text and binary messages seen.
    pub texts: u64,
    /// Of which compressed.
    pub compressed_messages: u64,
    /// Payload bytes of data frames, as sent (compressed or not).
    pub payload_bytes: u64,
    /// Payload bytes of data messages once inflated.
    pub decoded_bytes: u64,
    /// Whether a close frame arrived.
    pub closed: bool,
    /// Stop after this many messages (0: never).
    pub stop_after: u64,
    /// Arrival times of the messages, when recording.
    pub arrivals: Option<Vec<Instant>>,
    /// Why decoding stopped for good, if it did.
    pub error: Option<&'static str>,
}

/// What RFC 7692 §7.2.2 has the receiver append to a message before inflating it.
const DEFLATE_TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

impl std::fmt::Debug for WsCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsCounter")
            .field("texts", &self.texts)
            .field("compressed_messages", &self.compressed_messages)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl WsCounter {
    /// A counter for a connection on which the server agreed to permessage-deflate.
    pub fn deflate() -> Self {
        Self {
            inflate: Some(Inflate::raw(15).expect("zlib allocates a decompressor")),
            ..Self::default()
        }
    }

    /// Inflates `payload` of the current compressed message, counting what it gives.
    fn inflate(&mut self, payload: &[u8]) {
        let Some(inflate) = self.inflate.as_mut() else {
            self.error = Some("RSV1 on a message, and permessage-deflate was not agreed");
            return;
        };
        self.out.clear();
        if inflate.inflate(payload, &mut self.out, usize::MAX).is_err() {
            self.error = Some("invalid deflate data in a WebSocket message");
        }
        self.decoded_bytes += self.out.len() as u64;
    }

    /// The current frame's payload is all in: a data message may be complete.
    fn frame_done(&mut self) -> bool {
        if !self.fin || !matches!(self.opcode, 0..=2) {
            return false;
        }
        if self.compressed {
            self.inflate(&DEFLATE_TAIL);
            self.compressed_messages += 1;
        }
        self.texts += 1;
        if let Some(arrivals) = self.arrivals.as_mut() {
            arrivals.push(Instant::now());
        }
        self.texts == self.stop_after
    }
}

impl Sink for WsCounter {
    fn data(&mut self, bytes: &[u8]) -> ControlFlow<usize> {
        if self.error.is_some() {
            return ControlFlow::Break(0);
        }
        let mut i = 0;
        while i < bytes.len() {
            if self.payload_left > 0 {
                let n =
                    (bytes.len() - i).min(usize::try_from(self.payload_left).unwrap_or(usize::MAX));
                if matches!(self.opcode, 0..=2) {
                    self.payload_bytes += n as u64;
                    if self.compressed {
                        self.inflate(&bytes[i..i + n]);
                    } else {
                        self.decoded_bytes += n as u64;
                    }
                }
                i += n;
                self.payload_left -= n as u64;
                if self.payload_left == 0 && self.frame_done() || self.error.is_some() {
                    return ControlFlow::Break(i);
                }
                continue;
            }
            self.header[self.header_len] = bytes[i];
            self.header_len += 1;
            i += 1;
            if self.header_len == 2 {
                let len7 = self.header[1] & 0x7f;
                let masked = self.header[1] & 0x80 != 0;
                self.header_need =
                    2 + match len7 {
                        126 => 2,
                        127 => 8,
                        _ => 0,
                    } + if masked { 4 } else { 0 };
            }
            if self.header_len >= 2 && self.header_len == self.header_need {
                self.fin = self.header[0] & 0x80 != 0;
                self.opcode = self.header[0] & 0x0f;
                if matches!(self.opcode, 1 | 2) {
                    // A message's first frame says whether it is compressed.
                    self.compressed = self.header[0] & 0x40 != 0;
                }
                let len7 = self.header[1] & 0x7f;
                self.payload_left = match len7 {
                    126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                    127 => u64::from_be_bytes(self.header[2..10].try_into().expect("8 bytes")),
                    n => u64::from(n),
                };
                self.header_len = 0;
                if self.opcode == 8 {
                    self.closed = true;
                    return ControlFlow::Break(i);
                }
                if self.payload_left == 0 && self.frame_done() {
                    return ControlFlow::Break(i);
                }
            }
            if self.error.is_some() {
                return ControlFlow::Break(i);
            }
        }
        ControlFlow::Continue(())
    }
}

/// A WebSocket upgrade request for `path_and_query` (no `Origin`: a non-browser client),
/// offering `extensions` (`Sec-WebSocket-Extensions`) when given.
pub fn ws_upgrade_request(path_and_query: &str, extensions: Option<&str>) -> String {
    let extensions = extensions
        .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n{extensions}\r\n"
    )
}

/// What a browser offers (Chromium's `Sec-WebSocket-Extensions`), and so the clients.
pub const WS_DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// A masked client close frame, code 1000.
pub const WS_CLOSE: [u8; 8] = [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_decoding_survives_any_split() {
        let wire = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx: y\r\n\r\nNEXT";
        for step in 1..wire.len() {
            let mut dec = Chunked::default();
            let mut out = Collect(Vec::new());
            let mut at = 0;
            let mut done = false;
            while at < wire.len() && !done {
                let end = (at + step).min(wire.len());
                let (used, flow) = dec.feed(&wire[at..end], &mut out).unwrap();
                at += used;
                done = matches!(flow, Flow::Done);
            }
            assert!(done, "step {step}");
            assert_eq!(&wire[at..], b"NEXT", "step {step}");
            assert_eq!(out.0, b"hello world", "step {step}");
        }
    }

    #[test]
    fn a_recording_line_counter_stops_and_resumes() {
        let wire = b"Data Chunk 0\nData Chunk 1\nData Chunk 2\n";
        let mut c = LineCounter {
            stop_after: 1,
            arrivals: Some(Vec::new()),
            ..LineCounter::default()
        };
        let ControlFlow::Break(used) = c.data(wire) else {
            panic!("stops after the first line");
        };
        assert_eq!(&wire[used..used + 4], b"Data");
        c.stop_after = 0;
        for part in wire[used..].chunks(5) {
            assert!(c.data(part).is_continue());
        }
        assert_eq!(c.lines, 3);
        assert_eq!(c.arrivals.map(|a| a.len()), Some(3));
    }

    #[test]
    fn sse_counter_counts_id_lines_across_splits() {
        let wire = b"retry: 1000\n\nid: 0\nevent: chunk\ndata: {}\n\nid: 1\nevent: chunk\ndata: {\"id:\":1}\n\n: keep-alive\n\nevent: end\ndata: {}\n\n";
        for step in 1..wire.len() {
            let mut c = SseCounter::default();
            for part in wire.chunks(step) {
                let _ = c.data(part);
            }
            assert_eq!(c.events, 2, "step {step}");
        }
    }

    #[test]
    fn a_stopped_sse_counter_resumes_where_it_stopped() {
        let wire = b"id: 0\ndata: a\n\nid: 1\ndata: b\n\nid: 2\ndata: c\n\n";
        let mut c = SseCounter {
            stop_after: 1,
            ..SseCounter::default()
        };
        let ControlFlow::Break(used) = c.data(wire) else {
            panic!("stops after the first event");
        };
        c.stop_after = 0;
        assert!(c.data(&wire[used..]).is_continue());
        assert_eq!(c.events, 3);
    }

    /// `events` compressed as a server sends them: gzip, one sync flush per event, then the
    /// end; returns the body and where each flushed piece ends.
    fn gzipped(events: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        use chunkstream_zlib::{Deflate, Wrapper};
        let mut deflate = Deflate::new(Wrapper::Gzip, 1, 9, 2).expect("a compressor");
        let (mut body, mut ends) = (Vec::new(), Vec::new());
        for event in events {
            deflate.flush(event, &mut body);
            ends.push(body.len());
        }
        deflate.finish(&mut body);
        (body, ends)
    }

    #[test]
    fn a_gzip_body_decodes_whatever_way_it_is_split() {
        let events: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("id: {i}\ndata: {{\"index\":{i}}}\n\n").into_bytes())
            .collect();
        let plain: Vec<u8> = events.concat();
        let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
        let (body, _) = gzipped(&refs);
        assert!(body.len() < plain.len(), "compressed: {}", body.len());
        for step in [1, 2, 3, 7, 10, 11, 64, body.len()] {
            let mut gunzip = Gunzip::new();
            let mut out = Collect(Vec::new());
            for part in body.chunks(step) {
                assert!(gunzip.feed(part, &mut out).is_continue(), "step {step}");
            }
            assert_eq!(out.0, plain, "step {step}");
            assert_eq!(gunzip.decoded_bytes, plain.len() as u64);
        }
    }

    #[test]
    fn each_flushed_gzip_piece_decodes_on_arrival() {
        let events: [&[u8]; 3] = [b"id: 0\n\n", b"id: 1\n\n", b"id: 2\n\n"];
        let (body, ends) = gzipped(&events);
        let mut gunzip = Gunzip::new();
        let mut counter = SseCounter::default();
        let mut from = 0;
        for (k, &end) in ends.iter().enumerate() {
            let _ = gunzip.feed(&body[from..end], &mut counter);
            assert_eq!(
                counter.events,
                k as u64 + 1,
                "event {k} counted with its piece"
            );
            from = end;
        }
    }

    #[test]
    fn a_stopped_gzip_reader_gets_the_rest_before_more_input() {
        let events: [&[u8]; 3] = [b"id: 0\n\nid: 1\n\n", b"id: 2\n\n", b""];
        let (body, ends) = gzipped(&events);
        let mut gunzip = Gunzip::new();
        let mut counter = SseCounter {
            stop_after: 1,
            ..SseCounter::default()
        };
        let first = &body[..ends[0]];
        assert_eq!(
            gunzip.feed(first, &mut counter),
            ControlFlow::Break(first.len())
        );
        assert_eq!(counter.events, 1);
        assert!(gunzip.pending(), "event 1 waits in the decoder");
        counter.stop_after = 0;
        assert!(gunzip.feed(&[], &mut counter).is_continue());
        assert_eq!(counter.events, 2, "event 1 counted without new input");
        let _ = gunzip.feed(&body[ends[0]..], &mut counter);
        assert_eq!(counter.events, 3);
        assert_eq!(gunzip.error, None);
    }

    #[test]
    fn what_is_not_gzip_is_an_error() {
        let mut gunzip = Gunzip::new();
        assert!(
            gunzip
                .feed(b"id: 0\n\n", &mut Collect(Vec::new()))
                .is_break()
        );
        assert!(gunzip.error.is_some());
    }

    /// A server's WebSocket text frame (unmasked), with RSV1 when `compressed`.
    fn ws_frame(payload: &[u8], compressed: bool) -> Vec<u8> {
        let first = if compressed { 0xc1 } else { 0x81 };
        let mut frame = vec![first];
        match payload.len() {
            n @ 0..=125 => frame.push(n as u8),
            n => {
                frame.push(126);
                frame.extend((n as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn permessage_deflate_messages_decode_with_the_context_kept() {
        use chunkstream_zlib::{Deflate, Wrapper};
        let mut deflate = Deflate::new(Wrapper::Raw, 1, 9, 1).expect("a compressor");
        let mut wire = Vec::new();
        let mut plain = 0;
        for i in 0..40 {
            let json = format!("{{\"index\":{i},\"text\":\"Data Chunk {i}\"}}");
            plain += json.len();
            let mut payload = Vec::new();
            deflate.flush(json.as_bytes(), &mut payload);
            // RFC 7692 §7.2.1: the sync flush's empty block tail is not sent.
            assert!(payload.ends_with(&DEFLATE_TAIL));
            payload.truncate(payload.len() - DEFLATE_TAIL.len());
            // An uncompressed message may come between compressed ones.
            let compressed = i != 7;
            if compressed {
                wire.extend(ws_frame(&payload, true));
            } else {
                wire.extend(ws_frame(json.as_bytes(), false));
                deflate.reset();
                // The context is gone on both sides only if the server resets: start the
                // compressor afresh and the decoder still reads on (no back-references).
            }
        }
        wire.extend([0x88, 2, 0x03, 0xe8]);
        for step in [1, 2, 5, 13, wire.len()] {
            let mut c = WsCounter::deflate();
            for part in wire.chunks(step) {
                if c.data(part).is_break() {
                    break;
                }
            }
            assert_eq!(c.error, None, "step {step}");
            assert_eq!(
                (c.texts, c.compressed_messages, c.closed),
                (40, 39, true),
                "step {step}"
            );
            assert_eq!(c.decoded_bytes, plain as u64, "step {step}");
            assert!(
                c.payload_bytes * 2 < plain as u64,
                "step {step}: {}",
                c.payload_bytes
            );
        }
    }

    #[test]
    fn rsv1_without_permessage_deflate_is_an_error() {
        let mut c = WsCounter::default();
        assert!(c.data(&ws_frame(b"\x02\x00", true)).is_break());
        assert!(c.error.is_some());
    }

    #[test]
    fn the_head_says_what_the_server_encoded() {
        assert_eq!(content_encoding(b" gzip"), ContentEncoding::Gzip);
        assert_eq!(content_encoding(b"identity"), ContentEncoding::Identity);
        assert_eq!(content_encoding(b"br"), ContentEncoding::Other);
    }

    #[test]
    fn ws_counter_counts_text_frames_and_close() {
        let mut wire = vec![0x81, 3, b'a', b'b', b'c', 0x81, 126, 0, 200];
        wire.extend(std::iter::repeat_n(b'x', 200));
        wire.extend([0x89, 0, 0x88, 2, 0x03, 0xe8]);
        for step in 1..wire.len() {
            let mut c = WsCounter::default();
            for part in wire.chunks(step) {
                if c.data(part).is_break() {
                    break;
                }
            }
            assert_eq!((c.texts, c.closed), (2, true), "step {step}");
        }
    }
}
