//! The loop with compressed messages (permessage-deflate): they decode on arrival, control
//! frames stay plain, and a batch is as many messages as a plain one.

use super::*;

/// The client's decoder of a compressed stream: its context kept from message to message.
struct Inflater(chunkstream_zlib::Inflate);

impl Inflater {
    fn new() -> Self {
        Self(chunkstream_zlib::Inflate::raw(15).expect("an inflater"))
    }

    /// The text of `event`, which must be a compressed text message, and its payload's size.
    fn read(&mut self, event: Event) -> (String, usize) {
        let Event::Frame(Message::Frame(frame)) = event else {
            panic!("not a compressed message: {event:?}");
        };
        assert!(frame.header().rsv1, "RSV1 marks a compressed message");
        let mut payload = frame.payload().to_vec();
        payload.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
        let mut text = Vec::new();
        self.0
            .inflate(&payload, &mut text, usize::MAX)
            .expect("valid deflate data");
        (
            String::from_utf8(text).expect("UTF-8"),
            frame.payload().len(),
        )
    }
}

#[tokio::test(start_paused = true)]
async fn compressed_messages_decode_on_arrival_and_control_frames_stay_plain() {
    let deflate = Deflate::new(Agreed::default()).expect("a compressor");
    let mut h = start_with(100, 60_000, PeerReads::Reading, Some(deflate));
    let mut client = Inflater::new();
    let (text, mut sent) = client.read(h.next().await);
    assert_eq!(text, chunk_json(0));
    assert_eq!(h.next().await, Event::Flush);
    // The heartbeat's ping is a control frame: never compressed.
    assert_eq!(h.next().await, ping());
    assert_eq!(h.next().await, Event::Flush);
    h.send(Message::Pong(Bytes::from_static(PING_PAYLOAD)));
    // The answer to a bad control message is a text message: compressed, in the same context.
    h.send(Message::text("?"));
    let (error, size) = client.read(h.next().await);
    sent += size;
    assert!(error.starts_with(r#"{"error":"#), "{error}");
    assert_eq!(h.next().await, Event::Flush);
    h.control("stop");
    let expected = [
        close(CloseCode::Normal, "stopped"),
        Event::Flush,
        Event::Linger,
    ];
    assert_eq!(h.rest().await, expected);
    assert_eq!(h.bytes_sent("deflate"), sent as u64);
    assert_eq!(h.bytes_sent("identity"), 0);
    assert_eq!(h.outcome().await, Outcome::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_flat_out_compressed_stream_shrinks_at_least_threefold() {
    let deflate = Deflate::new(Agreed::default()).expect("a compressor");
    let mut h = start_with(10_000, 0, PeerReads::Reading, Some(deflate));
    let mut client = Inflater::new();
    let (mut identity, mut compressed) = (0, 0);
    for index in 0..10_000 {
        let (text, size) = client.read(h.next().await);
        assert_eq!(text, chunk_json(index));
        identity += text.len();
        compressed += size;
    }
    assert!(
        compressed * 3 < identity,
        "{compressed} bytes for {identity}"
    );
    assert_eq!(h.next().await, close(CloseCode::Normal, "done"));
    assert_eq!(h.bytes_sent("deflate"), compressed as u64);
    assert_eq!(h.outcome().await, Outcome::Completed);
}

/// The chunk messages of the loop's first batch: the client's `stop`, sent as the first one
/// goes out, is read once the batch is fed.
async fn first_batch(deflate: Option<Deflate>) -> usize {
    let mut h = start_probe(100_000, 0, PeerReads::Reading, deflate, true);
    let events = h.rest().await;
    assert_eq!(
        events.iter().rev().nth(2),
        Some(&close(CloseCode::Normal, "stopped"))
    );
    assert_eq!(h.outcome().await, Outcome::Stopped);
    events.len() - 3
}

#[tokio::test(start_paused = true)]
async fn a_compressed_batch_is_as_many_messages_as_a_plain_one() {
    let plain = first_batch(None).await;
    let deflate = Deflate::new(Agreed::default()).expect("a compressor");
    let compressed = first_batch(Some(deflate)).await;
    // Counted in text, the batch does not grow when its messages shrink.
    assert_eq!(compressed, plain);
    let text: usize = (0..plain as u64).map(|index| chunk_json(index).len()).sum();
    assert!(text >= BATCH_BYTES, "{text}");
}
