//! The connection loop, driven through channels on paused time: what it writes, when it
//! flushes, how it closes and what it counts.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::{
    sync::mpsc::{self, UnboundedReceiver, UnboundedSender, error::TryRecvError},
    time::{self, Instant},
};
use tokio_tungstenite::tungstenite::{
    Error as WsError, Message, Utf8Bytes,
    error::{CapacityError, ProtocolError},
    protocol::{CloseFrame, frame::coding::CloseCode},
};

use super::{
    Deflate, Options, Socket, conn::CLOSE_GRACE, extension::Agreed, heartbeat::PING_PAYLOAD, run,
    socket::BATCH_BYTES, socket::MAX_INCOMING,
};
use crate::{
    client::ClientKey,
    connection::Activity,
    generator::StreamParams,
    shutdown::Shutdown,
    streams::{Limits, Metrics, Outcome, Peer, Recipient, Streams, Transport},
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
enum PeerReads {
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
    peer: PeerReads,
    /// The connection, which the server's deadlines tell that its client stalled.
    connection: Arc<Activity>,
    incoming: UnboundedReceiver<Result<Message, WsError>>,
    /// The client's side, to send `stop` as the first frame goes out, if set.
    stop_on_first_frame: Option<UnboundedSender<Result<Message, WsError>>>,
}

impl Sink<Message> for Recorder {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.peer {
            PeerReads::Reading => Poll::Ready(Ok(())),
            PeerReads::Blocked => Poll::Pending,
            PeerReads::Stalled => {
                // What the server's deadlines do to a socket whose client accepts no bytes.
                self.connection.stall();
                Poll::Ready(Err(WsError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client accepted no bytes within the stall timeout",
                ))))
            }
        }
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        if let Some(client) = self.stop_on_first_frame.take() {
            let _ = client.send(Ok(Message::text(r#"{"action":"stop"}"#)));
        }
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
    shutdown: Shutdown,
    metrics: Metrics,
    task: tokio::task::JoinHandle<Outcome>,
}

/// The heartbeat period of most tests.
const PING: Duration = Duration::from_secs(10);

fn start(count: u64, interval_ms: u64, peer: PeerReads) -> Harness {
    start_with(count, interval_ms, peer, None)
}

/// A connection whose messages `deflate` compresses, if given.
fn start_with(count: u64, interval_ms: u64, peer: PeerReads, deflate: Option<Deflate>) -> Harness {
    start_probe(count, interval_ms, peer, deflate, false)
}

/// A connection as [`start_with`] makes, whose client sends `stop` as the first frame goes
/// out if `stop_on_first_frame`.
fn start_probe(
    count: u64,
    interval_ms: u64,
    peer: PeerReads,
    deflate: Option<Deflate>,
    stop_on_first_frame: bool,
) -> Harness {
    let params = StreamParams::new(count, interval_ms, 0).expect("valid test params");
    let limits = Limits {
        streams: 10,
        per_client: 10,
    };
    let shutdown = Shutdown::default();
    let metrics = Metrics::new();
    let streams = Streams::new(limits, shutdown.clone(), metrics.clone());
    let connection = Arc::new(Activity::default());
    let to = Recipient {
        key: ClientKey::of([127, 0, 0, 1].into()),
        peer: Peer(None),
        connection: Some(connection.clone()),
    };
    let chunks = streams
        .open(Transport::Ws, params, to)
        .expect("room for a stream");
    let (events_tx, events) = mpsc::unbounded_channel();
    let (client, incoming) = mpsc::unbounded_channel();
    let socket = Recorder {
        events: events_tx,
        peer,
        connection,
        incoming,
        stop_on_first_frame: stop_on_first_frame.then(|| client.clone()),
    };
    let options = Options {
        ping: PING,
        shutdown: shutdown.token().clone(),
        deflate,
    };
    let task = tokio::spawn(run(socket, chunks, options));
    Harness {
        client,
        events,
        shutdown,
        metrics,
        task,
    }
}

fn chunk_json(index: u64) -> String {
    format!(r#"{{"index":{index},"text":"Data Chunk {index}"}}"#)
}

fn chunk_frame(index: u64) -> Event {
    Event::Frame(Message::text(chunk_json(index)))
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

    /// `chunkstream_bytes_sent_total{transport="ws",encoding}`.
    fn bytes_sent(&self, encoding: &str) -> u64 {
        let series =
            format!("chunkstream_bytes_sent_total{{transport=\"ws\",encoding=\"{encoding}\"}} ");
        let rendered = self.metrics.render();
        let value = rendered
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no series {series} in {rendered}"));
        value.parse().expect("a count")
    }
}

#[tokio::test(start_paused = true)]
async fn ready_chunks_are_fed_without_flushes_then_closed_with_done() {
    let mut h = start(3, 0, PeerReads::Reading);
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
    let mut h = start(10_000, 0, PeerReads::Reading);
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
    let mut h = start(3, 1000, PeerReads::Reading);
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
    let mut h = start(100_000, 100, PeerReads::Reading);
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
    h.shutdown.begin();
    let rest = h.rest().await;
    assert_eq!(
        rest.iter().rev().nth(2),
        Some(&close(CloseCode::Away, "server shutting down"))
    );
    assert_eq!(h.outcome().await, Outcome::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn bad_control_messages_get_an_error_frame_and_the_stream_goes_on() {
    let mut h = start(100, 1000, PeerReads::Reading);
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
    h.shutdown.begin();
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
        let mut h = start(100, 1000, PeerReads::Reading);
        assert_eq!(h.next().await, chunk_frame(0));
        assert_eq!(h.next().await, Event::Flush);
        h.client.send(input).expect("the loop is reading");
        assert_eq!(h.rest().await, [expected, Event::Flush, Event::Linger]);
        assert_eq!(h.outcome().await, Outcome::ProtocolError);
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_close_is_answered_and_counted_client_gone() {
    let mut h = start(100, 1000, PeerReads::Reading);
    assert_eq!(h.next().await, chunk_frame(0));
    assert_eq!(h.next().await, Event::Flush);
    h.send(Message::Close(None));
    // tungstenite queued the answer as it read the close: flushing sends it.
    assert_eq!(h.rest().await, [Event::Flush, Event::Linger]);
    assert_eq!(h.outcome().await, Outcome::ClientGone);
}

#[tokio::test(start_paused = true)]
async fn a_client_ping_gets_its_pong_flushed_at_once() {
    let mut h = start(100, 60_000, PeerReads::Reading);
    assert_eq!(h.next().await, chunk_frame(0));
    assert_eq!(h.next().await, Event::Flush);
    // tungstenite queues the pong itself; the loop flushes it.
    h.send(Message::Ping(Bytes::from_static(b"hi")));
    assert_eq!(h.next().await, Event::Flush);
    h.shutdown.begin();
    assert_eq!(h.outcome().await, Outcome::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_pinged_then_dropped() {
    let t0 = Instant::now();
    let mut h = start(100, 60_000, PeerReads::Reading);
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
    let mut h = start(100, 60_000, PeerReads::Reading);
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
    h.shutdown.begin();
    assert_eq!(h.outcome().await, Outcome::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn a_peer_whose_socket_stalls_is_counted_stalled_and_dropped_at_once() {
    let t0 = Instant::now();
    let mut h = start(100, 0, PeerReads::Stalled);
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
    let h = start(100, 0, PeerReads::Blocked);
    time::sleep(Duration::from_secs(1)).await;
    h.shutdown.begin();
    let t0 = Instant::now();
    assert_eq!(h.outcome().await, Outcome::Shutdown);
    // The close frame cannot be written either: given up after the grace period.
    assert_eq!(t0.elapsed(), CLOSE_GRACE);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_leaves_ends_the_stream_at_once() {
    let mut h = start(100, 1000, PeerReads::Reading);
    assert_eq!(h.next().await, chunk_frame(0));
    let t0 = Instant::now();
    h.hang_up();
    assert_eq!(h.outcome().await, Outcome::ClientGone);
    assert_eq!(t0.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn every_message_payload_is_counted_as_written_in_identity() {
    let mut h = start(3, 0, PeerReads::Reading);
    h.rest().await;
    let json: usize = (0..3).map(|index| chunk_json(index).len()).sum();
    assert_eq!(h.bytes_sent("identity"), json as u64);
    assert_eq!(h.bytes_sent("deflate"), 0);
    assert_eq!(h.outcome().await, Outcome::Completed);
}

mod compressed;
