//! `text/plain`: one line `Data Chunk {index}\n` per chunk, as in the Flask example.

use bytes::{BufMut, BytesMut};

use super::{Encoder, encode::ChunkWriter};
use crate::generator::Chunk;

/// Encodes chunks as lines of text.
#[derive(Default)]
pub struct TextLines(ChunkWriter);

impl Encoder for TextLines {
    fn chunk(&mut self, chunk: Chunk, out: &mut BytesMut) {
        self.0.text(chunk, out);
        out.put_u8(b'\n');
    }
}
