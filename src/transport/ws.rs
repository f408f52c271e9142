//! WebSocket: each chunk one text frame, client control, heartbeats, limits and close codes.
//!
//! [`run`] drives one connection from the generator's chunk stream. It is generic over the
//! socket's two halves (any `Sink<Message>` and `Stream<Item = Result<Message, _>>`), so the
//! unit tests below drive it with channels and paused time, and the integration tests with a
//! real socket. One task, one `select!` loop: the peer's messages are read while chunks are
//! sent, and nothing is polled from the generator while the client has paused the stream.

use std::{fmt, future::Future, io, pin::pin, time::Duration};

use bytes::BytesMut;
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt, stream};
use poem::web::websocket::{CloseCode, Message, WebSocketConfig};
use serde::Deserialize;
use tokio::time::{self, Instant, MissedTickBehavior};
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
/// loop looks at the peer's messages again (tungstenite writes its buffer out by itself).
const BATCH_BYTES: usize = super::FRAME_TARGET;

/// After our close frame, how long the peer has to answer it before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Payload of the server's heartbeat pings.
const PING_PAYLOAD: &[u8] = b"chunkstream";

/// The socket limits: 4 KiB frames and messages from the client, and small buffers (a
/// stream's frames are small and flushed whenever the generator would wait).
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_INCOMING))
        .max_frame_size(Some(MAX_INCOMING))
        .read_buffer_size(MAX_INCOMING)
        .write_buffer_size(super::FRAME_TARGET)
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

/// An error of the socket, as far as the stream is concerned.
pub trait SocketError: fmt::Display {
    /// The peer sent a frame or a message over [`MAX_INCOMING`].
    fn is_too_big(&self) -> bool;
    /// The peer accepted no bytes for the stall timeout.
    fn is_stall(&self) -> bool;
}

impl SocketError for io::Error {
    fn is_stall(&self) -> bool {
        Expired::of(self) == Some(Expired::Stall)
    }

    fn is_too_big(&self) -> bool {
        // poem turns tungstenite's `Error::Capacity` into `io::Error::other(err.to_string())`,
        // so its text is all that is left of it. A unit test pins the text to tungstenite's.
        self.kind() == io::ErrorKind::Other && self.to_string().starts_with("Space limit exceeded")
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Every chunk was sent.
    Done,
    /// The client sent `stop`.
    Stopped,
    /// The server is shutting down.
    Shutdown,
    /// The client sent a binary frame.
    Binary,
    /// The client sent a frame or message over the limit; the read side is dead.
    TooBig,
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
    fn outcome(self) -> Outcome {
        match self {
            Ending::Done => Outcome::Completed,
            Ending::Stopped => Outcome::Stopped,
            Ending::Shutdown => Outcome::Shutdown,
            Ending::Binary | Ending::TooBig | Ending::Unresponsive => Outcome::ProtocolError,
            Ending::ClientClosed | Ending::ClientGone => Outcome::ClientGone,
            Ending::Stalled => Outcome::Stalled,
        }
    }

    /// Our close frame, if one is due and the peer can still receive it.
    fn close_frame(self) -> Option<Message> {
        let (code, reason) = match self {
            Ending::Done => (CloseCode::Normal, "done"),
            Ending::Stopped => (CloseCode::Normal, "stopped"),
            Ending::Shutdown => (CloseCode::Away, "server shutting down"),
            Ending::Binary => (CloseCode::Unsupported, "binary frames are not accepted"),
            Ending::TooBig => (
                CloseCode::Size,
                "frames and messages are limited to 4096 bytes",
            ),
            Ending::ClientClosed | Ending::ClientGone | Ending::Unresponsive | Ending::Stalled => {
                return None;
            }
        };
        Some(Message::close_with(code, reason))
    }

    /// Whether the read side still works, so the peer's close answer can be read.
    fn can_read(self) -> bool {
        !matches!(
            self,
            Ending::TooBig | Ending::ClientGone | Ending::Unresponsive | Ending::Stalled
        )
    }
}

/// Streams `chunks` over a WebSocket until the end, a `stop`, the peer leaving or breaking
/// the protocol, or server shutdown; then closes it with the right code.
///
/// The guard is finished and dropped (and the generator dropped) as soon as the stream
/// ends, before the closing handshake, so the metrics never wait on a slow peer.
pub async fn run<Si, St, E>(
    sink: Si,
    incoming: St,
    chunks: impl Stream<Item = ChunkRange>,
    params: StreamParams,
    mut guard: StreamGuard,
    options: Options,
) -> Outcome
where
    Si: Sink<Message> + Unpin,
    Si::Error: SocketError,
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: SocketError,
{
    let mut conn = Conn {
        sink,
        incoming,
        shutdown: options.shutdown,
        dirty: false,
    };
    // One message per chunk: the generator's ranges are taken apart here.
    let chunks = chunks.flat_map(stream::iter);
    let ending = conn.stream(chunks, &params, &mut guard, options.ping).await;
    let outcome = ending.outcome();
    guard.finish(outcome);
    drop(guard);
    conn.close(ending).await;
    outcome
}

/// The two halves of a socket and what every write needs.
struct Conn<Si, St> {
    sink: Si,
    incoming: St,
    shutdown: CancellationToken,
    /// Frames were fed but not flushed.
    dirty: bool,
}

impl<Si, St, E> Conn<Si, St>
where
    Si: Sink<Message> + Unpin,
    Si::Error: SocketError,
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: SocketError,
{
    /// The stream proper: returns why it ended.
    async fn stream(
        &mut self,
        chunks: impl Stream<Item = Chunk>,
        params: &StreamParams,
        guard: &mut StreamGuard,
        ping: Duration,
    ) -> Ending {
        let mut chunks = pin!(chunks.fuse());
        let mut next = params.start();
        let mut writer = ChunkWriter::default();
        let mut paused = false;
        let mut ticker = time::interval_at(Instant::now() + ping, ping);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        let shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ending::Shutdown,
                message = self.incoming.next() => {
                    last_heard = Instant::now();
                    match message {
                        Some(Ok(Message::Text(text))) => match serde_json::from_str(&text) {
                            Ok(Control::Pause) => paused = true,
                            Ok(Control::Resume) => paused = false,
                            Ok(Control::Stop) => return Ending::Stopped,
                            Err(err) => {
                                let error = format!(
                                    "invalid control message ({err}); send \
                                     {{\"action\":\"pause\"}}, {{\"action\":\"resume\"}} \
                                     or {{\"action\":\"stop\"}}"
                                );
                                let frame = serde_json::json!({ "error": error }).to_string();
                                if let Err(ending) = self.send(Message::Text(frame)).await {
                                    return ending;
                                }
                            }
                        },
                        Some(Ok(Message::Binary(_))) => return Ending::Binary,
                        Some(Ok(Message::Ping(_))) => {
                            // tungstenite queued the pong; see that it goes out now.
                            if let Err(ending) = self.flush().await {
                                return ending;
                            }
                        }
                        Some(Ok(Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) => return Ending::ClientClosed,
                        Some(Err(err)) if err.is_too_big() => return Ending::TooBig,
                        Some(Err(err)) => {
                            tracing::debug!(%err, "websocket read failed");
                            return Ending::ClientGone;
                        }
                        None => return Ending::ClientGone,
                    }
                }
                tick = ticker.tick() => {
                    if ping_sent.is_some_and(|sent| last_heard < sent) {
                        tracing::debug!("websocket peer did not answer a ping");
                        return Ending::Unresponsive;
                    }
                    ping_sent = None;
                    // Only a peer silent for a whole period is pinged.
                    if last_heard + ping <= tick {
                        if let Err(ending) = self.send(Message::ping(PING_PAYLOAD)).await {
                            return ending;
                        }
                        ping_sent = Some(Instant::now());
                    }
                }
                chunk = chunks.next(), if !paused => {
                    let Some(first) = chunk else {
                        // The generator only ends early when the server shuts down.
                        return if next == params.count() { Ending::Done } else { Ending::Shutdown };
                    };
                    // Feed the chunks that are ready without waiting; flush once the generator
                    // would wait, or leave the batch pending when the budget is spent.
                    let mut chunk = first;
                    let mut sent = 0;
                    let mut bytes = 0;
                    let result = loop {
                        let frame = frame(&mut writer, chunk);
                        bytes += frame.as_bytes().len();
                        next = chunk.index + 1;
                        sent += 1;
                        if let Err(ending) = self.feed(frame).await {
                            break Err(ending);
                        }
                        if bytes >= BATCH_BYTES {
                            break Ok(());
                        }
                        match chunks.next().now_or_never() {
                            Some(Some(ready)) => chunk = ready,
                            // Ended: the next turn of the loop sends the close frame.
                            Some(None) => break Ok(()),
                            None => break self.flush().await,
                        }
                    };
                    guard.sent(sent);
                    if let Err(ending) = result {
                        return ending;
                    }
                }
            }
            if paused && self.dirty {
                if let Err(ending) = self.flush().await {
                    return ending;
                }
            }
        }
    }

    /// Queues `message` without flushing.
    async fn feed(&mut self, message: Message) -> Result<(), Ending> {
        self.dirty = true;
        let op = self.sink.feed(message);
        guarded(op, &self.shutdown).await
    }

    /// Sends `message` and flushes everything queued before it.
    async fn send(&mut self, message: Message) -> Result<(), Ending> {
        let op = self.sink.send(message);
        guarded(op, &self.shutdown).await?;
        self.dirty = false;
        Ok(())
    }

    /// Flushes queued frames (and tungstenite's queued pongs).
    async fn flush(&mut self) -> Result<(), Ending> {
        let op = self.sink.flush();
        guarded(op, &self.shutdown).await?;
        self.dirty = false;
        Ok(())
    }

    /// Closes the socket as `ending` requires; every step is bounded by [`CLOSE_GRACE`].
    async fn close(mut self, ending: Ending) {
        let answered = match ending.close_frame() {
            Some(frame) => time::timeout(CLOSE_GRACE, self.sink.send(frame)).await,
            // Flushing sends tungstenite's queued answer to the client's close frame.
            None if ending == Ending::ClientClosed => {
                time::timeout(CLOSE_GRACE, self.sink.flush()).await
            }
            None => return,
        };
        if !matches!(answered, Ok(Ok(()))) || !ending.can_read() {
            return;
        }
        // Read until the peer's close answer ends the stream: dropping a socket with unread
        // input would reset the connection instead of closing it.
        let drained = async { while let Some(Ok(_)) = self.incoming.next().await {} };
        let _ = time::timeout(CLOSE_GRACE, drained).await;
    }
}

/// Runs a write, giving up when the server shuts down.
async fn guarded<F, Er>(op: F, shutdown: &CancellationToken) -> Result<(), Ending>
where
    F: Future<Output = Result<(), Er>>,
    Er: SocketError,
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
    result.map_err(|err| {
        if err.is_stall() {
            tracing::debug!("websocket peer stopped reading");
            return Ending::Stalled;
        }
        tracing::debug!(%err, "websocket write failed");
        Ending::ClientGone
    })
}

/// A chunk's text frame: its JSON.
fn frame(writer: &mut ChunkWriter, chunk: Chunk) -> Message {
    let mut json = BytesMut::with_capacity(64);
    writer.json(chunk, &mut json);
    Message::Text(String::from_utf8(json.into()).expect("a chunk's JSON is ASCII"))
}

#[cfg(test)]
mod tests {
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender, error::TryRecvError};
    use tokio_tungstenite::tungstenite;

    use super::*;
    use crate::{
        client::Share,
        generator::{self, StreamParams},
        metrics::Metrics,
        streams::{Limits, Streams},
        transport::Transport,
    };

    /// What the loop did to its sink.
    #[derive(Debug, PartialEq)]
    enum Event {
        Frame(Message),
        Flush,
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

    /// A sink that reports every frame and flush, unless its peer reads nothing.
    struct Recorder {
        events: UnboundedSender<Event>,
        peer: Peer,
    }

    impl Sink<Message> for Recorder {
        type Error = io::Error;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            match self.peer {
                Peer::Reading => Poll::Ready(Ok(())),
                Peer::Blocked => Poll::Pending,
                Peer::Stalled => {
                    Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, Expired::Stall)))
                }
            }
        }

        fn start_send(self: Pin<&mut Self>, item: Message) -> io::Result<()> {
            self.events
                .send(Event::Frame(item))
                .map_err(|_| io::ErrorKind::BrokenPipe.into())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            let _ = self.events.send(Event::Flush);
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.poll_flush(cx)
        }
    }

    /// A connection under test: the client's side of the channels, and the loop's task.
    struct Harness {
        client: UnboundedSender<io::Result<Message>>,
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
        let (client, mut from_client) = mpsc::unbounded_channel::<io::Result<Message>>();
        let incoming = futures_util::stream::poll_fn(move |cx| from_client.poll_recv(cx));
        let sink = Recorder {
            events: events_tx,
            peer,
        };
        let chunks = generator::chunks(params, shutdown.clone());
        let options = Options {
            ping: PING,
            shutdown: shutdown.clone(),
        };
        let task =
            tokio::spawn(async move { run(sink, incoming, chunks, params, guard, options).await });
        Harness {
            client,
            events,
            shutdown,
            task,
        }
    }

    fn chunk_frame(index: u64) -> Event {
        Event::Frame(Message::Text(format!(
            r#"{{"index":{index},"text":"Data Chunk {index}"}}"#
        )))
    }

    fn close(code: CloseCode, reason: &str) -> Event {
        Event::Frame(Message::close_with(code, reason))
    }

    fn ping() -> Event {
        Event::Frame(Message::ping(PING_PAYLOAD))
    }

    impl Harness {
        fn send(&self, message: Message) {
            self.client.send(Ok(message)).expect("the loop is reading");
        }

        fn control(&self, action: &str) {
            self.send(Message::Text(format!(r#"{{"action":"{action}"}}"#)));
        }

        /// The client's input ends (EOF), as when it answers our close frame.
        fn hang_up(&mut self) {
            self.client = mpsc::unbounded_channel().0;
        }

        async fn next(&mut self) -> Event {
            self.events.recv().await.expect("an event")
        }

        /// Every event until the loop drops its sink.
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
        let expected = vec![
            chunk_frame(0),
            chunk_frame(1),
            chunk_frame(2),
            // Sending the close frame flushes it and the batch before it: one flush in all.
            close(CloseCode::Normal, "done"),
            Event::Flush,
        ];
        let mut events = Vec::new();
        while events.len() < expected.len() {
            events.push(h.next().await);
        }
        assert_eq!(events, expected);
        // The loop waits for the client's close answer (its input ending) before dropping.
        h.hang_up();
        assert_eq!(h.rest().await, []);
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
        h.hang_up();
        let rest = h.rest().await;
        assert_eq!(rest, [close(CloseCode::Normal, "stopped"), Event::Flush]);
        assert_eq!(h.outcome().await, Outcome::Stopped);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_stops_polling_the_generator_and_resume_continues() {
        let mut h = start(100_000, 100, Peer::Reading);
        assert_eq!(h.next().await, chunk_frame(0));
        assert_eq!(h.next().await, Event::Flush);
        h.control("pause");
        // Chunk 1 was due at 100 ms; paused, nothing comes for a long while.
        time::sleep(Duration::from_secs(10)).await;
        assert!(matches!(h.events.try_recv(), Err(TryRecvError::Empty)));
        h.control("resume");
        // Pacing is absolute: the chunks that fell due while paused come at once, in order.
        assert_eq!(h.next().await, chunk_frame(1));
        assert_eq!(h.next().await, chunk_frame(2));
        h.shutdown.cancel();
        h.hang_up();
        let rest = h.rest().await;
        assert_eq!(
            rest.iter().rev().nth(1),
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
            h.send(Message::Text(bad.to_owned()));
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
        h.hang_up();
        assert_eq!(h.outcome().await, Outcome::Shutdown);
    }

    #[tokio::test(start_paused = true)]
    async fn protocol_errors_close_with_their_codes() {
        let too_big =
            tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
                size: 5000,
                max_size: MAX_INCOMING,
            });
        let cases = [
            (
                Ok(Message::Binary(vec![1, 2, 3])),
                close(CloseCode::Unsupported, "binary frames are not accepted"),
            ),
            (
                // What poem makes of tungstenite's capacity error.
                Err(io::Error::other(too_big.to_string())),
                close(
                    CloseCode::Size,
                    "frames and messages are limited to 4096 bytes",
                ),
            ),
        ];
        for (input, expected) in cases {
            let mut h = start(100, 1000, Peer::Reading);
            assert_eq!(h.next().await, chunk_frame(0));
            assert_eq!(h.next().await, Event::Flush);
            h.client.send(input).expect("the loop is reading");
            h.hang_up();
            assert_eq!(h.rest().await, [expected, Event::Flush]);
            assert_eq!(h.outcome().await, Outcome::ProtocolError);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_ping_gets_its_pong_flushed_at_once() {
        let mut h = start(100, 60_000, Peer::Reading);
        assert_eq!(h.next().await, chunk_frame(0));
        assert_eq!(h.next().await, Event::Flush);
        // tungstenite queues the pong itself; the loop flushes it.
        h.send(Message::Ping(b"hi".to_vec()));
        assert_eq!(h.next().await, Event::Flush);
        h.shutdown.cancel();
        h.hang_up();
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
        h.send(Message::Text(r#"{"action":"resume"}"#.to_owned()));
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
                    h.send(Message::Pong(PING_PAYLOAD.to_vec()));
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
        h.hang_up();
        assert_eq!(h.outcome().await, Outcome::Shutdown);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_whose_socket_stalls_is_counted_stalled_and_dropped_at_once() {
        let t0 = Instant::now();
        let mut h = start(100, 0, Peer::Stalled);
        assert_eq!(
            h.rest().await,
            [],
            "no close frame for a peer that reads nothing"
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
    fn too_big_is_recognised_in_what_poem_makes_of_tungstenite_errors() {
        let too_big =
            tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
                size: 5000,
                max_size: MAX_INCOMING,
            });
        assert!(io::Error::other(too_big.to_string()).is_too_big());
        let other = tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        );
        assert!(!io::Error::other(other.to_string()).is_too_big());
        assert!(!io::Error::from(io::ErrorKind::ConnectionReset).is_too_big());
    }
}
