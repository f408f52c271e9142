//! [`Messages`]: the text messages the server sends, each chunk's JSON and each error,
//! compressed when permessage-deflate was agreed.

use bytes::BytesMut;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::deflate::Deflate;
use crate::{generator::Chunk, transport::encode::ChunkWriter};

/// Room reserved for one chunk's message: its JSON (at most 71 bytes) and, compressed, its
/// payload (a few bytes more than the JSON at worst).
const MESSAGE_ROOM: usize = 160;

/// The scratch buffer's size: room for many messages before it is reused.
const SCRATCH: usize = 4 * 1024;

/// The text messages of one stream.
pub struct Messages {
    writer: ChunkWriter,
    /// Each message's JSON is written here and split off: tungstenite copies a message into
    /// its write buffer and drops it, so this one allocation is reused message after message.
    scratch: BytesMut,
    /// The compressor, if permessage-deflate was agreed.
    deflate: Option<Deflate>,
}

impl Messages {
    /// The messages of a stream, compressed by `deflate` if given.
    pub fn new(deflate: Option<Deflate>) -> Self {
        Self {
            writer: ChunkWriter::default(),
            scratch: BytesMut::with_capacity(SCRATCH),
            deflate,
        }
    }

    /// A chunk's text message (its JSON), and the length of that text, which a compressed
    /// message carries in fewer bytes.
    pub fn chunk(&mut self, chunk: Chunk) -> (Message, usize) {
        if self.scratch.capacity() < MESSAGE_ROOM {
            // Reclaims the buffer in place once tungstenite has dropped the earlier messages.
            self.scratch.reserve(SCRATCH);
        }
        self.writer.json(chunk, &mut self.scratch);
        let json = self.scratch.split();
        let text = json.len();
        let message = match &mut self.deflate {
            None => {
                Message::Text(Utf8Bytes::try_from(json.freeze()).expect("a chunk's JSON is ASCII"))
            }
            Some(deflate) => deflate.text(&json, &mut self.scratch),
        };
        (message, text)
    }

    /// The text message answering a message the server could not obey.
    pub fn error(&mut self, error: String) -> Message {
        match &mut self.deflate {
            None => Message::text(error),
            Some(deflate) => deflate.text(error.as_bytes(), &mut self.scratch),
        }
    }
}

/// The bytes of a message's payload as sent (compressed, if it was): what the stream counts
/// as written.
pub fn payload_len(message: &Message) -> usize {
    match message {
        Message::Frame(frame) => frame.payload().len(),
        message => message.len(),
    }
}
