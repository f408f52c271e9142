//! [`Messages`]: each chunk one text message holding its JSON.

use bytes::BytesMut;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::{generator::Chunk, transport::encode::ChunkWriter};

/// Room reserved for one chunk's JSON.
const MESSAGE_ROOM: usize = 64;

/// The scratch buffer's size: room for many messages before it is reused.
const SCRATCH: usize = 4 * 1024;

/// The chunks of one stream as text messages.
pub struct Messages {
    writer: ChunkWriter,
    /// Each message's JSON is written here and split off: tungstenite copies a message into
    /// its write buffer and drops it, so this one allocation is reused message after message.
    scratch: BytesMut,
}

impl Default for Messages {
    fn default() -> Self {
        Self {
            writer: ChunkWriter::default(),
            scratch: BytesMut::with_capacity(SCRATCH),
        }
    }
}

impl Messages {
    /// A chunk's text message: its JSON.
    pub fn text(&mut self, chunk: Chunk) -> Message {
        if self.scratch.capacity() < MESSAGE_ROOM {
            // Reclaims the buffer in place once tungstenite has dropped the earlier messages.
            self.scratch.reserve(SCRATCH);
        }
        self.writer.json(chunk, &mut self.scratch);
        let json = self.scratch.split().freeze();
        Message::Text(Utf8Bytes::try_from(json).expect("a chunk's JSON is ASCII"))
    }
}
