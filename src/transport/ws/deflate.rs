//! [`Deflate`]: permessage-deflate as agreed with one client, and the compressor of the
//! server's messages (RFC 7692 §7.2.1).
//!
//! Each message is deflated and flushed (a sync flush), so that it decodes whole on arrival,
//! and sent without the `00 00 ff ff` that the flush ends with (the client appends it). The
//! compressor keeps its context from one message to the next, which is where a stream of
//! short, similar messages gets its ratio, unless the client asked it not to.

use std::fmt;

use bytes::{Bytes, BytesMut};
use chunkstream_zlib::{self as zlib, Wrapper};
use poem::http::{HeaderMap, header};
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    },
};

use super::extension::{self, Agreed, SERVER_WINDOW_BITS};

/// zlib's compression level. A flushed message is a few bytes whatever the level; level 1
/// costs the least CPU (BENCHMARKS.md, "Compression").
const LEVEL: u8 = 1;

/// zlib's memory level: the smallest hash table, for a compressor held as long as its
/// connection (BENCHMARKS.md, "Compression").
const MEM_LEVEL: u8 = 1;

/// The end of every sync flush (an empty stored block), which §7.2.1 leaves off the wire.
const FLUSH_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// permessage-deflate, agreed with a client: the answer for its `101`, and the compressor
/// of the messages sent to it.
pub struct Deflate {
    agreed: Agreed,
    zlib: zlib::Deflate,
    /// One message's compressed bytes, reused from message to message.
    out: Vec<u8>,
}

impl fmt::Debug for Deflate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deflate")
            .field("agreed", &self.agreed)
            .finish_non_exhaustive()
    }
}

impl Deflate {
    /// permessage-deflate if the opening handshake `headers` offer it in a form this server
    /// accepts; `None`: the WebSocket is served uncompressed.
    pub fn negotiate(headers: &HeaderMap) -> Option<Self> {
        let offers = headers
            .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .filter_map(|value| value.to_str().ok());
        Self::new(extension::negotiate(offers)?)
    }

    /// The compressor for `agreed`; `None` (uncompressed) if zlib cannot have its memory.
    pub fn new(agreed: Agreed) -> Option<Self> {
        match zlib::Deflate::new(Wrapper::Raw, LEVEL, SERVER_WINDOW_BITS, MEM_LEVEL) {
            Ok(zlib) => Some(Self {
                agreed,
                zlib,
                out: Vec::new(),
            }),
            Err(err) => {
                tracing::warn!(%err, "no compressor: the WebSocket goes uncompressed");
                None
            }
        }
    }

    /// The `Sec-WebSocket-Extensions` value of the `101`.
    pub fn answer(&self) -> String {
        self.agreed.answer()
    }

    /// The compressed text message holding `text`: RSV1 set, its payload taken from
    /// `scratch` (`text` compressed is appended there, then split off).
    pub fn text(&mut self, text: &[u8], scratch: &mut BytesMut) -> Message {
        self.out.clear();
        self.zlib.flush(text, &mut self.out);
        let payload = self
            .out
            .strip_suffix(&FLUSH_TAIL)
            .expect("zlib ends a sync flush with an empty stored block");
        if payload.is_empty() {
            // An empty message compresses to the tail alone: it is sent as one empty
            // fixed-Huffman block instead (§7.2.3.6).
            scratch.extend_from_slice(&[0x00]);
        } else {
            scratch.extend_from_slice(payload);
        }
        if self.agreed.server_no_context_takeover {
            self.zlib.reset();
        }
        frame(scratch.split().freeze())
    }
}

/// A text message's single frame with RSV1 set: its payload is compressed.
fn frame(payload: Bytes) -> Message {
    let mut frame = Frame::message(payload, OpCode::Data(Data::Text), true);
    frame.header_mut().rsv1 = true;
    Message::Frame(frame)
}

#[cfg(test)]
mod tests {
    use chunkstream_zlib::Inflate;

    use super::*;

    /// A client's decoder of the server's messages: context kept from one to the next.
    struct Client(Inflate);

    impl Client {
        fn new() -> Self {
            Self(Inflate::raw(15).expect("an inflater"))
        }

        /// The text of a compressed message.
        fn read(&mut self, message: &Message) -> String {
            let Message::Frame(frame) = message else {
                panic!("not a compressed frame: {message:?}");
            };
            let header = frame.header();
            assert!(header.rsv1 && header.is_final, "{header:?}");
            assert_eq!(header.opcode, OpCode::Data(Data::Text));
            let mut text = Vec::new();
            let mut payload = frame.payload().to_vec();
            payload.extend_from_slice(&FLUSH_TAIL);
            self.0
                .inflate(&payload, &mut text, usize::MAX)
                .expect("valid deflate data");
            String::from_utf8(text).expect("UTF-8")
        }
    }

    fn chunk(i: u64) -> String {
        format!(r#"{{"index":{i},"text":"Data Chunk {i}"}}"#)
    }

    /// The payload bytes of `count` consecutive chunk messages from `deflate`, each checked
    /// to decode whole on arrival.
    fn stream(mut deflate: Deflate, count: u64) -> (usize, usize) {
        let mut client = Client::new();
        let mut scratch = BytesMut::new();
        let (mut identity, mut compressed) = (0, 0);
        for i in 1000..1000 + count {
            let text = chunk(i);
            let message = deflate.text(text.as_bytes(), &mut scratch);
            assert_eq!(client.read(&message), text, "message {i} whole, on arrival");
            identity += text.len();
            compressed += message.len() - 2;
        }
        (identity, compressed)
    }

    #[test]
    fn messages_decode_on_arrival_and_the_context_makes_them_small() {
        let deflate = Deflate::new(Agreed::default()).expect("a compressor");
        let (identity, compressed) = stream(deflate, 2000);
        assert!(
            compressed * 3 < identity,
            "{compressed} bytes for {identity}"
        );
    }

    #[test]
    fn server_no_context_takeover_compresses_each_message_alone() {
        let agreed = Agreed {
            server_no_context_takeover: true,
            ..Agreed::default()
        };
        let mut deflate = Deflate::new(agreed).expect("a compressor");
        let mut scratch = BytesMut::new();
        let text = chunk(7);
        let first = deflate.text(text.as_bytes(), &mut scratch);
        let again = deflate.text(text.as_bytes(), &mut scratch);
        assert_eq!(first, again, "nothing carried over from the first message");
        // A fresh decoder for each message reads it.
        assert_eq!(Client::new().read(&again), text);
    }

    #[test]
    fn an_empty_message_is_one_empty_block() {
        let mut deflate = Deflate::new(Agreed::default()).expect("a compressor");
        let mut scratch = BytesMut::new();
        let message = deflate.text(b"", &mut scratch);
        let Message::Frame(frame) = &message else {
            panic!("{message:?}");
        };
        assert_eq!(frame.payload(), [0x00]);
        assert_eq!(Client::new().read(&message), "");
    }
}
