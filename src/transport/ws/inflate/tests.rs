//! The inflating reader under tungstenite, driven over a duplex pipe.

use chunkstream_zlib::{Deflate, Wrapper};
use futures_util::StreamExt;
use tokio::io::{AsyncWriteExt, DuplexStream, duplex};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Error as WsError, Message, error::ProtocolError, protocol::Role},
};

use super::*;
use crate::transport::ws::{Ending, config};

/// FIN, RSV1, and the first byte of a compressed text frame and of its continuation.
const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const PING: u8 = 0x9;

/// A client frame: `first` (FIN, RSV and opcode bits), the length, a mask and `payload`
/// masked with it.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![first];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    let mask = [0x9a, 0x01, 0x7e, 0x33];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// `data` compressed as a client compresses one message alone (zlib's default window
/// and memory level), without the tail §7.2.1 leaves off.
fn deflated(data: &[u8]) -> Vec<u8> {
    let mut deflate = Deflate::new(Wrapper::Raw, 6, 15, 8).expect("a compressor");
    let mut out = Vec::new();
    deflate.flush(data, &mut out);
    assert!(out.ends_with(&FLUSH_TAIL));
    out.truncate(out.len() - FLUSH_TAIL.len());
    out
}

/// The server's end of a connection, with permessage-deflate if `deflate`, and the
/// client's raw end.
async fn connection(deflate: bool) -> (WebSocketStream<Inflating<DuplexStream>>, DuplexStream) {
    let (client, server) = duplex(64 * 1024);
    let io = Inflating::new(server, deflate);
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config())).await;
    (ws, client)
}

/// Writes `bytes` one byte at a time: every frame head and payload is cut by reads.
async fn trickle(client: &mut DuplexStream, bytes: &[u8]) {
    for byte in bytes {
        client.write_all(&[*byte]).await.expect("written");
    }
}

async fn next(ws: &mut WebSocketStream<Inflating<DuplexStream>>) -> Result<Message, WsError> {
    ws.next().await.expect("a message or an error")
}

/// What tungstenite reads of `bytes`, written at once to a connection with
/// permessage-deflate, as the stream's ending.
async fn ending(bytes: &[u8]) -> Ending {
    let (mut ws, mut client) = connection(true).await;
    client.write_all(bytes).await.expect("written");
    match next(&mut ws).await {
        Err(err) => Ending::of(err),
        Ok(message) => panic!("read {message:?}"),
    }
}

#[tokio::test]
async fn compressed_messages_are_read_as_plain_ones_whatever_the_reads() {
    let (mut ws, mut client) = connection(true).await;
    let stop = br#"{"action":"stop"}"#;
    let data = deflated(stop);
    let (first, rest) = data.split_at(5);
    let mut bytes = frame(FIN | RSV1 | TEXT, &deflated(b"pause"));
    // A fragmented message with a ping between its frames.
    bytes.extend(frame(RSV1 | TEXT, first));
    bytes.extend(frame(FIN | PING, b"hi"));
    bytes.extend(frame(FIN | CONTINUATION, rest));
    // Uncompressed, on a connection that could compress: allowed (§6).
    bytes.extend(frame(FIN | TEXT, b"plain"));
    bytes.extend(frame(FIN | RSV1 | BINARY, &deflated(&[1, 2, 3])));
    // An empty message, as §7.2.3.6 sends it.
    bytes.extend(frame(FIN | RSV1 | TEXT, &[0x00]));
    trickle(&mut client, &bytes).await;
    let expected = [
        Message::text("pause"),
        Message::Ping(b"hi".as_slice().into()),
        Message::text(std::str::from_utf8(stop).expect("UTF-8")),
        Message::text("plain"),
        Message::binary(vec![1, 2, 3]),
        Message::text(""),
    ];
    for message in expected {
        assert_eq!(next(&mut ws).await.expect("a message"), message);
    }
    // Between messages the reader holds no buffer.
    let reader = ws.get_ref();
    assert_eq!(reader.input.capacity() + reader.output.capacity(), 0);
    assert!(reader.open.is_none());
}

#[tokio::test]
async fn any_window_reads_a_message_within_the_limit() {
    // Letters that do not repeat, then their start again: a back-reference from the end
    // of the largest message to its start. In two frames, so that the second reaches
    // back into what the first made, which only the window keeps.
    let mut seed = 1u32;
    let mut text: Vec<u8> = (0..MAX_INCOMING - 96)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            b'a' + (seed >> 16) as u8 % 26
        })
        .collect();
    text.extend_from_within(..96);
    let data = deflated(&text);
    let (first, last) = data.split_at(data.len() - 8);
    let mut narrow = Inflate::raw(WINDOW_BITS - 1).expect("an inflater");
    let mut out = Vec::new();
    narrow
        .inflate(first, &mut out, MAX_INCOMING)
        .expect("the start");
    assert_eq!(
        narrow.inflate(&[last, &FLUSH_TAIL].concat(), &mut out, MAX_INCOMING),
        Err(zlib::Error::Corrupt),
        "a smaller window does not reach that far"
    );
    let (mut ws, mut client) = connection(true).await;
    let frames = [frame(RSV1 | TEXT, first), frame(FIN | CONTINUATION, last)];
    client.write_all(&frames.concat()).await.expect("written");
    let text = String::from_utf8(text).expect("letters");
    assert_eq!(next(&mut ws).await.expect("a message"), Message::text(text));
}

#[tokio::test]
async fn a_frame_before_a_refused_one_is_read_first() {
    let (mut ws, mut client) = connection(true).await;
    let mut bytes = frame(FIN | RSV1 | TEXT, &deflated(b"first"));
    bytes.extend(frame(FIN | RSV1 | TEXT, &[0xff; 8]));
    client.write_all(&bytes).await.expect("written");
    assert_eq!(
        next(&mut ws).await.expect("a message"),
        Message::text("first")
    );
    let err = next(&mut ws).await.expect_err("refused");
    assert_eq!(Ending::of(err), Ending::Corrupt);
}

#[tokio::test]
async fn misused_or_refused_compression_ends_with_its_code() {
    let bomb = deflated(&[b'a'; 100_000]);
    let (first, rest) = bomb.split_at(bomb.len() / 2);
    let mut bomb_in_fragments = frame(RSV1 | TEXT, first);
    bomb_in_fragments.extend(frame(FIN | CONTINUATION, rest));
    let mut rsv1_on_a_continuation = frame(RSV1 | TEXT, &deflated(b"a"));
    rsv1_on_a_continuation.extend(frame(FIN | RSV1 | CONTINUATION, &deflated(b"b")));
    let reserved = Ending::Violation(ProtocolError::NonZeroReservedBits);
    let cases = [
        (
            "a message that inflates past the limit",
            frame(FIN | RSV1 | TEXT, &bomb),
            Ending::TooBig,
        ),
        ("the same in fragments", bomb_in_fragments, Ending::TooBig),
        (
            "a compressed frame over the limit",
            frame(FIN | RSV1 | TEXT, &vec![0; MAX_INCOMING + 1]),
            Ending::TooBig,
        ),
        (
            "data that does not inflate",
            frame(FIN | RSV1 | TEXT, &[0xff; 8]),
            Ending::Corrupt,
        ),
        (
            "text not UTF-8 once inflated",
            frame(FIN | RSV1 | TEXT, &deflated(&[b'a', 0xff, 0xfe])),
            Ending::NotUtf8,
        ),
        (
            "RSV1 on a ping",
            frame(FIN | RSV1 | PING, b""),
            reserved.clone(),
        ),
        (
            "RSV1 on a continuation",
            rsv1_on_a_continuation,
            reserved.clone(),
        ),
        (
            "RSV1 inside an uncompressed message",
            [frame(TEXT, b"a"), frame(FIN | RSV1 | TEXT, &deflated(b"b"))].concat(),
            reserved.clone(),
        ),
        ("RSV2", frame(FIN | 0x20 | TEXT, b"a"), reserved),
    ];
    for (case, bytes, expected) in cases {
        assert_eq!(ending(&bytes).await, expected, "{case}");
    }
}

#[tokio::test]
async fn without_the_extension_rsv1_is_tungstenites_to_refuse() {
    let (mut ws, mut client) = connection(false).await;
    client
        .write_all(&frame(FIN | RSV1 | TEXT, &deflated(b"pause")))
        .await
        .expect("written");
    let err = next(&mut ws).await.expect_err("refused");
    assert_eq!(
        Ending::of(err),
        Ending::Violation(ProtocolError::NonZeroReservedBits)
    );
}

#[tokio::test]
async fn after_a_refusal_what_follows_passes_untouched_to_the_end() {
    let (mut ws, mut client) = connection(true).await;
    client
        .write_all(&frame(FIN | RSV1 | TEXT, &[0xff; 8]))
        .await
        .expect("written");
    let err = next(&mut ws).await.expect_err("refused");
    assert_eq!(Ending::of(err), Ending::Corrupt);
    // What the closing handshake drains: no longer judged, and read to its end.
    let after = frame(FIN | RSV1 | TEXT, &deflated(b"later"));
    client.write_all(&after).await.expect("written");
    drop(client);
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(ws.get_mut(), &mut rest)
        .await
        .expect("drained");
    assert_eq!(rest, after);
}
