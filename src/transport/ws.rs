//! WebSocket: each chunk one text frame, client control, heartbeats, limits and close codes.
//!
//! [`run`] drives one connection from the generator's chunk stream until the stream reaches
//! its `Ending`, then closes the connection as that ending requires. The loop is one
//! `select!` over four sources, one call each: server shutdown, the peer's messages
//! (`Conn::receive`), the `Heartbeat`, and the chunks that are ready (`Conn::send_ready`).
//! Nothing is polled from the generator while the client has paused the stream.
//!
//! The loop is generic over its [`Socket`] (a `Sink` and `Stream` of tungstenite messages),
//! so the unit tests below drive it with channels and paused time, and the integration
//! tests with a real socket.

use std::{future::Future, pin::pin, time::Duration};

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt, stream, stream::FusedStream};
use serde::Deserialize;
use tokio::{
    io::{self, AsyncRead, AsyncWrite, AsyncWriteExt},
    time::{self, Instant, Interval, MissedTickBehavior},
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Error as WsError, Message, Utf8Bytes,
        error::ProtocolError,
        protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode},
    },
};
use tokio_util::sync::CancellationToken;

use crate::{
    generator::{Chunk, ChunkRange, StreamParams},
    metrics::Outcome,
    server::Expired,
    streams::StreamGuard,
    transport::encode::ChunkWriter,
};

/// Largest frame, and largest message, a client may send: control messages are a few bytes.
pub const MAX_INCOMING: usize = 4 * 1024;

/// Ready chunks are fed without a flush until about this many bytes are pending; then the
/// loop looks at the peer's messages again (tungstenite writes its buffer out by itself,
/// once it holds this much: its write buffer, which a stalled peer holds at most).
const BATCH_BYTES: usize = 64 * 1024;

/// After our close frame, how long the peer has to read it and close its side of the
/// connection before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Payload of the server's heartbeat pings.
const PING_PAYLOAD: &[u8] = b"chunkstream";

/// Longest reason a close frame can carry (its payload is at most 125 bytes, 2 for the code).
const MAX_CLOSE_REASON: usize = 123;

/// The socket limits: 4 KiB frames and messages from the client, and small buffers (a
/// stream's frames are small and flushed whenever the generator would wait).
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_INCOMING))
        .max_frame_size(Some(MAX_INCOMING))
        .read_buffer_size(MAX_INCOMING)
        .write_buffer_size(BATCH_BYTES)
}

/// How a WebSocket stream is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// A peer silent this long is pinged; one that stays silent until the next tick is
    /// dropped. (A peer that reads nothing is ended by its socket's stall deadline, as on
    /// every transport: the write fails with [`Expired::Stall`].)
    pub ping: Duration,
    /// Cancelled when the server shuts down: the stream closes with 1001 at once.
    pub shutdown: CancellationToken,
}

/// A WebSocket as the loop uses it: tungstenite messages in and out, and a way to end the
/// connection once the close frames are out.
pub trait Socket:
    Sink<Message, Error = WsError> + Stream<Item = Result<Message, WsError>> + Unpin + Send
{
    /// Ends the connection after our close frame, the lingering way: half-closes it, so the
    /// peer sees that nothing follows the close frame, then reads whatever the peer still
    /// sends until its close frame (or, when the framing is lost, until it closes its side),
    /// for at most `grace`.
    ///
    /// Dropping a socket with unread input resets the connection, and a reset can reach the
    /// peer before it has read our close frame: it then reports an abnormal end instead of
    /// our close code (RFC 6455 §7.1.1). A peer that broke the protocol mid-frame (a frame
    /// over the limit) is still sending the rest of it.
    fn linger(&mut self, grace: Duration) -> impl Future<Output = ()> + Send;
}

impl<T> Socket for WebSocketStream<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn linger(&mut self, grace: Duration) {
        let lingering = async {
            if self.get_mut().shutdown().await.is_err() {
                return;
            }
            // While tungstenite still follows the frames, the peer's close frame is the end.
            while !self.is_terminated() {
                match self.next().await {
                    Some(Ok(Message::Close(_))) | None => return,
                    Some(Ok(_)) => {}
                    Some(Err(_)) => break,
                }
            }
            // tungstenite lost the framing (it stops at its first error): take the bytes off
            // the connection until the peer closes its side.
            let io = self.get_mut();
            let _ = io::copy(io, &mut io::sink()).await;
        };
        let _ = time::timeout(grace, lingering).await;
    }
}

/// A control message from the client: `{"action": "pause" | "resume" | "stop"}`.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
enum Control {
    Pause,
    Resume,
    Stop,
}

/// Why the loop ended, which says how to close the socket and what to count.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ending {
    /// Every chunk was sent.
    Done,
    /// The client sent `stop`.
    Stopped,
    /// The server is shutting down.
    Shutdown,
    /// The client sent a binary frame.
    Binary,
    /// The client sent a frame or message over [`MAX_INCOMING`].
    TooBig,
    /// The client broke the framing rules (an unmasked frame, reserved bits, an unknown
    /// opcode, a bad continuation or control frame).
    Violation(ProtocolError),
    /// The client sent text that is not UTF-8.
    NotUtf8,
    /// The client sent a close frame: tungstenite has queued the answer.
    ClientClosed,
    /// The connection failed or hit EOF.
    ClientGone,
    /// The peer stopped answering pings.
    Unresponsive,
    /// The peer accepted no bytes for the stall timeout.
    Stalled,
}

impl Ending {
    /// What a socket error, read or write, means for the stream.
    fn of(err: WsError) -> Self {
        tracing::debug!(%err, "websocket error");
        match err {
            WsError::Io(err) if Expired::of(&err) == Some(Expired::Stall) => Ending::Stalled,
            WsError::Capacity(_) => Ending::TooBig,
            WsError::Utf8(_) => Ending::NotUtf8,
            // EOF without a close frame: the peer just left.
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Ending::ClientGone,
            WsError::Protocol(violation) => Ending::Violation(violation),
            _ => Ending::ClientGone,
        }
    }

    fn outcome(&self) -> Outcome {
        match self {
            Ending::Done => Outcome::Completed,
            Ending::Stopped => Outcome::Stopped,
            Ending::Shutdown => Outcome::Shutdown,
            Ending::Binary
            | Ending::TooBig
            | Ending::Violation(_)
            | Ending::NotUtf8
            | Ending::Unresponsive => Outcome::ProtocolError,
            Ending::ClientClosed | Ending::ClientGone => Outcome::ClientGone,
            Ending::Stalled => Outcome::Stalled,
        }
    }

    /// Our close frame, if one is due and the peer can still receive it.
    fn close_frame(&self) -> Option<Message> {
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
            Ending::ClientClosed | Ending::ClientGone | Ending::Unresponsive | Ending::Stalled => {
                return None;
            }
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

/// Ok: the stream goes on. Err: it is over, and why.
type Step = Result<(), Ending>;

/// Streams `chunks` over a WebSocket until the end, a `stop`, the peer leaving or breaking
/// the protocol, or server shutdown; then closes it with the right code.
///
/// The guard is finished and dropped (and the generator dropped) as soon as the stream
/// ends, before the closing handshake, so the metrics never wait on a slow peer.
pub async fn run<S: Socket>(
    socket: S,
    chunks: impl Stream<Item = ChunkRange>,
    params: StreamParams,
    mut guard: StreamGuard,
    options: Options,
) -> Outcome {
    let mut conn = Conn {
        socket,
        shutdown: options.shutdown,
        heartbeat: Heartbeat::new(options.ping),
        frames: Frames::new(&params),
        paused: false,
    };
    // One message per chunk: the generator's ranges are taken apart here.
    let chunks = chunks.flat_map(stream::iter);
    let ending = conn.stream(chunks, &mut guard).await;
    let outcome = ending.outcome();
    guard.finish(outcome);
    drop(guard);
    conn.close(ending).await;
    outcome
}

/// One connection: its socket and the state of its stream.
struct Conn<S> {
    socket: S,
    shutdown: CancellationToken,
    heartbeat: Heartbeat,
    frames: Frames,
    /// The client sent `pause`: the generator is not polled until `resume`.
    paused: bool,
}

impl<S: Socket> Conn<S> {
    /// The stream proper: returns why it ended.
    async fn stream(
        &mut self,
        chunks: impl Stream<Item = Chunk>,
        guard: &mut StreamGuard,
    ) -> Ending {
        let mut chunks = pin!(chunks.fuse());
        loop {
            let step = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => Err(Ending::Shutdown),
                message = self.socket.next() => self.receive(message).await,
                beat = self.heartbeat.tick() => self.beat(beat).await,
                chunk = chunks.next(), if !self.paused => {
                    self.send_ready(chunk, &mut chunks, guard).await
                }
            };
            if let Err(ending) = step {
                return ending;
            }
        }
    }

    /// Handles what the peer sent: a control message, a ping, its close, or an error.
    async fn receive(&mut self, message: Option<Result<Message, WsError>>) -> Step {
        self.heartbeat.heard();
        match message {
            Some(Ok(Message::Text(text))) => self.control(&text).await,
            Some(Ok(Message::Binary(_))) => Err(Ending::Binary),
            // tungstenite queued the pong; see that it goes out now.
            Some(Ok(Message::Ping(_))) => self.flush().await,
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => Ok(()),
            Some(Ok(Message::Close(_))) => Err(Ending::ClientClosed),
            Some(Err(err)) => Err(Ending::of(err)),
            None => Err(Ending::ClientGone),
        }
    }

    /// Obeys a control message; anything else is answered with an error frame.
    async fn control(&mut self, text: &str) -> Step {
        match serde_json::from_str(text) {
            Ok(Control::Pause) => {
                self.paused = true;
                // Nothing more is fed while paused: what is pending goes out now.
                self.flush().await
            }
            Ok(Control::Resume) => {
                self.paused = false;
                Ok(())
            }
            Ok(Control::Stop) => Err(Ending::Stopped),
            Err(err) => self.send(error_frame(&err)).await,
        }
    }

    /// Acts on a heartbeat tick.
    async fn beat(&mut self, beat: Beat) -> Step {
        match beat {
            Beat::Quiet => Ok(()),
            Beat::Ping => {
                self.send(Message::Ping(Bytes::from_static(PING_PAYLOAD)))
                    .await
            }
            Beat::Unanswered => {
                tracing::debug!("websocket peer did not answer a ping");
                Err(Ending::Unresponsive)
            }
        }
    }

    /// Sends `first` and the chunks ready after it, fed without a flush per frame; flushes
    /// once the generator would wait, or leaves the batch pending when [`BATCH_BYTES`] are
    /// fed (the loop comes back for more at once). `None`: the generator has ended.
    async fn send_ready(
        &mut self,
        first: Option<Chunk>,
        chunks: &mut (impl Stream<Item = Chunk> + Unpin),
        guard: &mut StreamGuard,
    ) -> Step {
        let Some(mut chunk) = first else {
            return Err(self.frames.ending());
        };
        let mut sent = 0;
        let mut bytes = 0;
        let result = loop {
            let frame = self.frames.text(chunk);
            bytes += frame.len();
            sent += 1;
            if let Err(ending) = self.feed(frame).await {
                break Err(ending);
            }
            if bytes >= BATCH_BYTES {
                break Ok(());
            }
            match chunks.next().now_or_never() {
                Some(Some(ready)) => chunk = ready,
                // Ended: the next turn of the loop sends the close frame, which flushes.
                Some(None) => break Ok(()),
                None => break self.flush().await,
            }
        };
        guard.sent(sent);
        result
    }

    /// Queues `message` without flushing.
    async fn feed(&mut self, message: Message) -> Step {
        guarded(self.socket.feed(message), &self.shutdown).await
    }

    /// Sends `message` and flushes everything queued before it.
    async fn send(&mut self, message: Message) -> Step {
        guarded(self.socket.send(message), &self.shutdown).await
    }

    /// Flushes queued frames (and tungstenite's queued pongs).
    async fn flush(&mut self) -> Step {
        guarded(self.socket.flush(), &self.shutdown).await
    }

    /// Closes the connection as `ending` requires: our close frame (or tungstenite's answer
    /// to the peer's), then the lingering end. Each step is bounded by [`CLOSE_GRACE`].
    async fn close(mut self, ending: Ending) {
        let sent = match ending.close_frame() {
            Some(frame) => time::timeout(CLOSE_GRACE, self.socket.send(frame)).await,
            // tungstenite queued its answer to the peer's close frame as it read it.
            None if ending == Ending::ClientClosed => {
                time::timeout(CLOSE_GRACE, self.socket.flush()).await
            }
            // Nobody to tell: the peer left, stopped reading or went silent.
            None => return,
        };
        if let Ok(Ok(())) = sent {
            self.socket.linger(CLOSE_GRACE).await;
        }
    }
}

/// Runs a write, giving up when the server shuts down.
async fn guarded<F>(op: F, shutdown: &CancellationToken) -> Step
where
    F: Future<Output = Result<(), WsError>>,
{
    let mut op = pin!(op);
    let result = match op.as_mut().now_or_never() {
        // The usual case, a write with room in the buffers: nothing to wait for.
        Some(result) => result,
        None => tokio::select! {
            biased;
            () = shutdown.cancelled() => return Err(Ending::Shutdown),
            result = op => result,
        },
    };
    result.map_err(Ending::of)
}

/// The answer to a text frame that is not a control message.
fn error_frame(err: &serde_json::Error) -> Message {
    let error = format!(
        "invalid control message ({err}); send {{\"action\":\"pause\"}}, \
         {{\"action\":\"resume\"}} or {{\"action\":\"stop\"}}"
    );
    Message::text(serde_json::json!({ "error": error }).to_string())
}

/// The chunks as text frames, and how far the stream has come.
struct Frames {
    writer: ChunkWriter,
    /// Each frame's JSON is written here and split off: tungstenite copies a frame into its
    /// write buffer and drops it, so this one allocation is reused frame after frame.
    scratch: BytesMut,
    /// The index after the last chunk sent.
    next: u64,
    count: u64,
}

/// Room reserved for one chunk's JSON.
const FRAME_ROOM: usize = 64;

/// The scratch buffer's size: room for many frames before it is reused.
const SCRATCH: usize = 4 * 1024;

impl Frames {
    fn new(params: &StreamParams) -> Self {
        Self {
            writer: ChunkWriter::default(),
            scratch: BytesMut::with_capacity(SCRATCH),
            next: params.start(),
            count: params.count(),
        }
    }

    /// A chunk's text frame: its JSON.
    fn text(&mut self, chunk: Chunk) -> Message {
        self.next = chunk.index + 1;
        if self.scratch.capacity() < FRAME_ROOM {
            // Reclaims the buffer in place once tungstenite has dropped the earlier frames.
            self.scratch.reserve(SCRATCH);
        }
        self.writer.json(chunk, &mut self.scratch);
        let json = self.scratch.split().freeze();
        Message::Text(Utf8Bytes::try_from(json).expect("a chunk's JSON is ASCII"))
    }

    /// Why the stream ended when the generator did.
    fn ending(&self) -> Ending {
        // The generator only ends early when the server shuts down.
        if self.next == self.count {
            Ending::Done
        } else {
            Ending::Shutdown
        }
    }
}

/// What a heartbeat tick calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beat {
    /// The peer was heard from lately: nothing to do.
    Quiet,
    /// The peer was silent for a whole period: ping it.
    Ping,
    /// The peer did not answer the last ping by this tick: it is gone.
    Unanswered,
}

/// The heartbeat: a peer silent for a period is pinged, and one that has not answered by
/// the next tick is given up on, so a vanished client never holds a stream open.
struct Heartbeat {
    ticker: Interval,
    period: Duration,
    last_heard: Instant,
    /// When the unanswered ping went out, if one did.
    pinged: Option<Instant>,
}

impl Heartbeat {
    fn new(period: Duration) -> Self {
        let mut ticker = time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            ticker,
            period,
            last_heard: Instant::now(),
            pinged: None,
        }
    }

    /// The peer sent something: it is there.
    fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// Waits for the next tick and says what it calls for. Cancel-safe: nothing changes
    /// until the tick has come.
    async fn tick(&mut self) -> Beat {
        let tick = self.ticker.tick().await;
        if self
            .pinged
            .take()
            .is_some_and(|ping| self.last_heard < ping)
        {
            return Beat::Unanswered;
        }
        if self.last_heard + self.period <= tick {
            self.pinged = Some(tick);
            return Beat::Ping;
        }
        Beat::Quiet
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        pin::Pin,
        task::{Context, Poll},
    };

    use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender, error::TryRecvError};
    use tokio_tungstenite::tungstenite::error::CapacityError;

    use super::*;
    use crate::{
        client::Share,
        generator::{self, StreamParams},
        metrics::Metrics,
        streams::{Limits, Streams},
        transport::Transport,
    };

    /// What the loop did to its socket.
    #[derive(Debug, PartialEq)]
    enum Event {
        Frame(Message),
        Flush,
        Linger,
    }

    /// What the test's socket does with writes.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Peer {
        /// Takes everything.
        Reading,
        /// Never has room.
        Blocked,
        /// Has no room, and its stall deadline has passed (what the server's socket reports).
        Stalled,
    }

    /// A socket that reports every frame, flush and linger, unless its peer reads nothing,
    /// and reads what the test sends.
    struct Recorder {
        events: UnboundedSender<Event>,
        peer: Peer,
        incoming: UnboundedReceiver<Result<Message, WsError>>,
    }

    impl Sink<Message> for Recorder {
        type Error = WsError;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            match self.peer {
                Peer::Reading => Poll::Ready(Ok(())),
                Peer::Blocked => Poll::Pending,
                Peer::Stalled => Poll::Ready(Err(WsError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    Expired::Stall,
                )))),
            }
        }

        fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
            self.events
                .send(Event::Frame(item))
                .map_err(|_| WsError::Io(io::ErrorKind::BrokenPipe.into()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            let _ = self.events.send(Event::Flush);
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            self.poll_flush(cx)
        }
    }

    impl Stream for Recorder {
        type Item = Result<Message, WsError>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.incoming.poll_recv(cx)
        }
    }

    impl Socket for Recorder {
        async fn linger(&mut self, _grace: Duration) {
            let _ = self.events.send(Event::Linger);
        }
    }

    /// A connection under test: the client's side of the channels, and the loop's task.
    struct Harness {
        client: UnboundedSender<Result<Message, WsError>>,
        events: UnboundedReceiver<Event>,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<Outcome>,
    }

    /// The heartbeat period of most tests.
    const PING: Duration = Duration::from_secs(10);

    fn start(count: u64, interval_ms: u64, peer: Peer) -> Harness {
        let params = StreamParams::new(count, interval_ms, 0).expect("valid test params");
        let limits = Limits {
            streams: 10,
            per_client: 10,
        };
        let streams = Streams::new(limits, Default::default(), Metrics::new());
        let share = Share::of([127, 0, 0, 1].into());
        let guard = streams
            .open(Transport::Ws, &params, share, None, "test")
            .expect("room for a stream");
        let shutdown = CancellationToken::new();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (client, incoming) = mpsc::unbounded_channel();
        let socket = Recorder {
            events: events_tx,
            peer,
            incoming,
        };
        let chunks = generator::chunks(params, shutdown.clone());
        let options = Options {
            ping: PING,
            shutdown: shutdown.clone(),
        };
        let task = tokio::spawn(run(socket, chunks, params, guard, options));
        Harness {
            client,
            events,
            shutdown,
            task,
        }
    }

    fn chunk_frame(index: u64) -> Event {
        Event::Frame(Message::text(format!(
            r#"{{"index":{index},"text":"Data Chunk {index}"}}"#
        )))
    }

    fn close(code: CloseCode, reason: &'static str) -> Event {
        Event::Frame(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
    }

    fn ping() -> Event {
        Event::Frame(Message::Ping(Bytes::from_static(PING_PAYLOAD)))
    }

    impl Harness {
        fn send(&self, message: Message) {
            self.client.send(Ok(message)).expect("the loop is reading");
        }

        fn control(&self, action: &str) {
            self.send(Message::text(format!(r#"{{"action":"{action}"}}"#)));
        }

        /// The client's input ends (EOF).
        fn hang_up(&mut self) {
            self.client = mpsc::unbounded_channel().0;
        }

        async fn next(&mut self) -> Event {
            self.events.recv().await.expect("an event")
        }

        /// Every event until the loop drops its socket.
        async fn rest(&mut self) -> Vec<Event> {
            let mut events = Vec::new();
            while let Some(event) = self.events.recv().await {
                events.push(event);
            }
            events
        }

        async fn outcome(self) -> Outcome {
            self.task.await.expect("the loop did not panic")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ready_chunks_are_fed_without_flushes_then_closed_with_done() {
        let mut h = start(3, 0, Peer::Reading);
        let expected = [
            chunk_frame(0),
            chunk_frame(1),
            chunk_frame(2),
            // Sending the close frame flushes it and the batch before it: one flush in all.
            close(CloseCode::Normal, "done"),
            Event::Flush,
            Event::Linger,
        ];
        assert_eq!(h.rest().await, expected);
        assert_eq!(h.outcome().await, Outcome::Completed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_is_left_pending_at_the_byte_budget_and_the_loop_goes_on() {
        // Far more than one batch of ready chunks.
        let mut h = start(10_000, 0, Peer::Reading);
        let mut frames = 0;
        let mut bytes = 0;
        loop {
            match h.next().await {
                Event::Frame(frame) => {
                    frames += 1;
                    bytes += frame.len();
                }
                Event::Flush => break,
                Event::Linger => panic!("ended before a flush"),
            }
        }
        // The first flush comes with the close frame: no batch was flushed on its own.
        assert_eq!(frames, 10_001);
        assert!(bytes > 4 * BATCH_BYTES, "{bytes}");
        assert_eq!(h.rest().await, [Event::Linger]);
        assert_eq!(h.outcome().await, Outcome::Completed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_chunk_is_flushed_at_once() {
        let mut h = start(3, 1000, Peer::Reading);
        assert_eq!(h.next().await, chunk_frame(0));
        assert_eq!(h.next().await, Event::Flush);
        let before = Instant::now();
        assert_eq!(h.next().await, chunk_frame(1));
        assert_eq!(before.elapsed(), Duration::from_secs(1));
        assert_eq!(h.next().await, Event::Flush);
        h.control("stop");
        let rest = h.rest().await;
        let expected = [
            close(CloseCode::Normal, "stopped"),
            Event::Flush,
            Event::Linger,
        ];
        assert_eq!(rest, expected);
        assert_eq!(h.outcome().await, Outcome::Stopped);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_flushes_stops_polling_the_generator_and_resume_continues() {
        let mut h = start(100_000, 100, Peer::Reading);
        assert_eq!(h.next().await, chunk_frame(0));
        assert_eq!(h.next().await, Event::Flush);
        h.control("pause");
        assert_eq!(h.next().await, Event::Flush);
        // Chunk 1 was due at 100 ms; paused, nothing comes for a long while.
        time::sleep(Duration::from_secs(5)).await;
        assert!(matches!(h.events.try_recv(), Err(TryRecvError::Empty)));
        h.control("resume");
        // Pacing is absolute: the 50 chunks that fell due while paused come at once (no time
        // passes on the paused clock), in order, in one batch; then the pace resumes.
        let resumed = Instant::now();
        for index in 1..=50 {
            assert_eq!(h.next().await, chunk_frame(index));
        }
        assert_eq!(resumed.elapsed(), Duration::ZERO);
        assert_eq!(h.next().await, Event::Flush);
        assert_eq!(h.next().await, chunk_frame(51));
        assert_eq!(resumed.elapsed(), Duration::from_millis(100));
        h.shutdown.cancel();
        let rest = h.rest().await;
        assert_eq!(
            rest.iter().rev().nth(2),
            Some(&close(CloseCode::Away, "server shutting down"))
        );
        assert_eq!(h.outcome().await, Outcome::Shutdown);
    }

    #[tokio::test(start_paused = true)]
    async fn bad_control_messages_get_an_error_frame_and_the_stream_goes_on() {
        let mut h = start(100, 1000, Peer::Reading);
        assert_eq!(h.next().await, chunk_frame(0));
        assert_eq!(h.next().await, Event::Flush);
        for bad in [
            "not json",
            r#"{"action":"jump"}"#,
            r#"{"verb":"stop"}"#,
            "[]",
        ] {
            h.send(Message::text(bad));
            let Event::Frame(Message::Text(text)) = h.next().await else {
                panic!("{bad}: expected an error frame");
            };
            let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            let error = json["error"].as_str().expect("an error field");
            assert!(error.contains(r#"{"action":"pause"}"#), "{bad}: {error}");
            assert_eq!(json.as_object().map(|o| o.len()), Some(1));
            assert_eq!(h.next().await, Event::Flush);
        }
        let before = Instant::now();
        assert_eq!(h.next().await, chunk_frame(1));
        assert_eq!(before.elapsed(), Duration::from_secs(1));
        h.shutdown.cancel();
        assert_eq!(h.outcome().await, Outcome::Shutdown);
    }

    #[tokio::test(start_paused = true)]
    async fn protocol_errors_close_with_their_codes_then_linger() {
        let too_big = WsError::Capacity(CapacityError::MessageTooLong {
            size: 5000,
            max_size: MAX_INCOMING,
        });
        let cases = [
            (
                Ok(Message::binary(vec![1, 2, 3])),
                close(CloseCode::Unsupported, "binary frames are not accepted"),
            ),
            (
                Err(too_big),
                close(
                    CloseCode::Size,
                    "frames and messages are limited to 4096 bytes",
                ),
            ),
            (
                Err(WsError::Protocol(ProtocolError::UnmaskedFrameFromClient)),
                close(
                    CloseCode::Protocol,
                    "Received an unmasked frame from client",
                ),
            ),
            (
                Err(WsError::Protocol(ProtocolError::NonZeroReservedBits)),
                close(CloseCode::Protocol, "Reserved bits are non-zero"),
            ),
            (
                Err(WsError::Protocol(ProtocolError::UnknownDataFrameType(3))),
                close(CloseCode::Protocol, "Unknown data frame type: 3"),
            ),
            (
                Err(WsError::Utf8("invalid utf-8 sequence".to_owned())),
                close(CloseCode::Invalid, "text must be UTF-8"),
            ),
        ];
        for (input, expected) in cases {
            let mut h = start(100, 1000, Peer::Reading);
            assert_eq!(h.next().await, chunk_frame(0));
            assert_eq!(h.next().await, Event::Flush);
            h.client.send(input).expect("the loop is reading");
            assert_eq!(h.rest().await, [expected, Event::Flush, Event::Linger]);
            assert_eq!(h.outcome().await, Outcome::ProtocolError);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_close_is_answered_and_counted_client_gone() {
        let mut h = start(100, 1000, Peer::Reading);
        assert_eq!(h.next().await, chunk_frame(0));
        assert_eq!(h.next().await, Event::Flush);
        h.send(Message::Close(None));
        // tungstenite queued the answer as it read the close: flushing sends it.
        assert_eq!(h.rest().await, [Event::Flush, Event::Linger]);
        assert_eq!(h.outcome().await, Outcome::ClientGone);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_ping_gets_its_pong_flushed_at_once() {
        let mut h = start(100, 60_000, Peer::Reading);
        assert_eq!(h.next().await, chunk_frame(0));
        assert_eq!(h.next().await, Event::Flush);
        // tungstenite queues the pong itself; the loop flushes it.
        h.send(Message::Ping(Bytes::from_static(b"hi")));
        assert_eq!(h.next().await, Event::Flush);
        h.shutdown.cancel();
        assert_eq!(h.outcome().await, Outcome::Shutdown);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_pinged_then_dropped() {
        let t0 = Instant::now();
        let mut h = start(100, 60_000, Peer::Reading);
        assert_eq!(h.next().await, chunk_frame(0));
        assert_eq!(h.next().await, Event::Flush);
        // Heard at 5 s: the tick at 10 s leaves it alone, the one at 20 s pings it...
        time::sleep(Duration::from_secs(5)).await;
        h.control("resume");
        assert_eq!(h.next().await, ping());
        assert_eq!(t0.elapsed(), PING * 2);
        assert_eq!(h.next().await, Event::Flush);
        // ...and with no answer by the tick at 30 s, it is dropped without a close frame.
        assert_eq!(h.rest().await, []);
        assert_eq!(t0.elapsed(), PING * 3);
        assert_eq!(h.outcome().await, Outcome::ProtocolError);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_answers_pings_is_kept() {
        let mut h = start(100, 60_000, Peer::Reading);
        assert_eq!(h.next().await, chunk_frame(0));
        assert_eq!(h.next().await, Event::Flush);
        let mut pings = 0;
        loop {
            match h.next().await {
                event if event == ping() => {
                    pings += 1;
                    h.send(Message::Pong(Bytes::from_static(PING_PAYLOAD)));
                }
                Event::Flush => {}
                event => {
                    // Chunk 1, due at 60 s: the peer is still there.
                    assert_eq!(event, chunk_frame(1));
                    break;
                }
            }
        }
        assert!(pings >= 5, "{pings} pings");
        h.shutdown.cancel();
        assert_eq!(h.outcome().await, Outcome::Shutdown);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_whose_socket_stalls_is_counted_stalled_and_dropped_at_once() {
        let t0 = Instant::now();
        let mut h = start(100, 0, Peer::Stalled);
        assert_eq!(
            h.rest().await,
            [],
            "no close frame, no lingering, for a peer that reads nothing"
        );
        assert_eq!(h.outcome().await, Outcome::Stalled);
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_a_blocked_write_at_once() {
        let h = start(100, 0, Peer::Blocked);
        time::sleep(Duration::from_secs(1)).await;
        h.shutdown.cancel();
        let t0 = Instant::now();
        assert_eq!(h.outcome().await, Outcome::Shutdown);
        // The close frame cannot be written either: given up after the grace period.
        assert_eq!(t0.elapsed(), CLOSE_GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_leaves_ends_the_stream_at_once() {
        let mut h = start(100, 1000, Peer::Reading);
        assert_eq!(h.next().await, chunk_frame(0));
        let t0 = Instant::now();
        h.hang_up();
        assert_eq!(h.outcome().await, Outcome::ClientGone);
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }

    #[test]
    fn socket_errors_map_to_endings() {
        let stall = io::Error::new(io::ErrorKind::TimedOut, Expired::Stall);
        let cases = [
            (WsError::Io(stall), Ending::Stalled),
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
