//! `application/jsonl`: one line per chunk, the chunk's JSON and `\n`, nothing else.

use bytes::{BufMut, BytesMut};

use super::{Encoder, encode::ChunkWriter};
use crate::generator::Chunk;

/// Encodes chunks as JSON Lines.
#[derive(Default)]
pub struct JsonLines(ChunkWriter);

impl Encoder for JsonLines {
    fn chunk(&mut self, chunk: Chunk, out: &mut BytesMut) {
        self.0.json(chunk, out);
        out.put_u8(b'\n');
    }
}
