//! [`Messages`]: the text messages the server sends, each chunk's JSON and each error,
//! compressed when permessage-deflate was agreed, and the account of what they hold.

use std::mem;

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
    /// What the messages made since it was last taken.
    made: Made,
}

/// What messages hold, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Made {
    /// Their text, as the client reads it.
    pub text: usize,
    /// Their payloads as sent: the text, or less once compressed.
    pub payload: usize,
}

impl Messages {
    /// The messages of a stream, compressed by `deflate` if given.
    pub fn new(deflate: Option<Deflate>) -> Self {
        Self {
            writer: ChunkWriter::default(),
            scratch: BytesMut::with_capacity(SCRATCH),
            deflate,
            made: Made::default(),
        }
    }

    /// A chunk's text message: its JSON.
    pub fn chunk(&mut self, chunk: Chunk) -> Message {
        if self.scratch.capacity() < MESSAGE_ROOM {
            // Reclaims the buffer in place once tungstenite has dropped the earlier messages.
            self.scratch.reserve(SCRATCH);
        }
        self.writer.json(chunk, &mut self.scratch);
        let json = self.scratch.split();
        self.made.text += json.len();
        match &mut self.deflate {
            None => {
                self.made.payload += json.len();
                let json = Utf8Bytes::try_from(json.freeze()).expect("a chunk's JSON is ASCII");
                Message::Text(json)
            }
            Some(deflate) => self.made.count(deflate.text(&json, &mut self.scratch)),
        }
    }

    /// The text message answering a message the server could not obey.
    pub fn error(&mut self, error: String) -> Message {
        self.made.text += error.len();
        match &mut self.deflate {
            None => {
                self.made.payload += error.len();
                Message::text(error)
            }
            Some(deflate) => self
                .made
                .count(deflate.text(error.as_bytes(), &mut self.scratch)),
        }
    }

    /// What the messages made since this was last called.
    pub fn take_made(&mut self) -> Made {
        mem::take(&mut self.made)
    }
}

impl Made {
    /// Counts the payload of the compressed `message`, and hands it on.
    fn count(&mut self, message: Message) -> Message {
        if let Message::Frame(frame) = &message {
            self.payload += frame.payload().len();
        }
        message
    }
}
