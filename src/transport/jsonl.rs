//! `application/jsonl`: one line per chunk, the chunk's JSON and `\n`, nothing else.

use bytes::{BufMut, BytesMut};
use futures_util::Stream;
use poem::Body;

use super::{Encoder, Frames};
use crate::{
    generator::{Chunk, ChunkRange, StreamParams},
    streams::StreamGuard,
    transport::encode::ChunkWriter,
};

/// Encodes chunks as JSON Lines.
#[derive(Default)]
pub struct JsonLines(ChunkWriter);

impl Encoder for JsonLines {
    fn chunk(&mut self, chunk: Chunk, out: &mut BytesMut) {
        self.0.json(chunk, out);
        out.put_u8(b'\n');
    }
}

/// The response body for `chunks`: a line each, written as made, ready lines coalesced.
pub fn body(
    chunks: impl Stream<Item = ChunkRange> + Send + 'static,
    params: &StreamParams,
    guard: StreamGuard,
) -> Body {
    let frames = Frames::new(
        chunks,
        JsonLines::default(),
        guard,
        params.start(),
        params.count(),
    );
    Body::from_bytes_stream(frames)
}
