//! `text/plain`: one line `Data Chunk {index}\n` per chunk, as in the Flask example.

use bytes::{BufMut, BytesMut};
use futures_util::Stream;
use poem::Body;

use super::{Encoder, Frames};
use crate::{
    generator::{Chunk, ChunkRange, StreamParams},
    streams::StreamGuard,
    transport::encode::ChunkWriter,
};

/// Encodes chunks as lines of text.
#[derive(Default)]
pub struct TextLines(ChunkWriter);

impl Encoder for TextLines {
    fn chunk(&mut self, chunk: Chunk, out: &mut BytesMut) {
        self.0.text(chunk, out);
        out.put_u8(b'\n');
    }
}

/// The response body for `chunks`: lines written as they are made, ready lines coalesced.
pub fn body(
    chunks: impl Stream<Item = ChunkRange> + Send + 'static,
    params: &StreamParams,
    guard: StreamGuard,
) -> Body {
    Body::from_bytes_stream(Frames::new(
        chunks,
        TextLines::default(),
        guard,
        params.start(),
        params.count(),
    ))
}
