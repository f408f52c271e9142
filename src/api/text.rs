//! `GET /stream`: the chunks as lines of `text/plain`.

use poem::{Request, web::Data};
use poem_openapi::{
    OpenApi,
    payload::Payload,
    registry::{MetaSchema, MetaSchemaRef},
};

use super::{State, StreamError, StreamQuery, Streamed, Tag, streamed::Media};
use crate::{streams::Transport, transport::text::TextLines};

/// The text transport.
#[derive(Default)]
pub struct TextApi;

/// `text/plain` lines, one per chunk, written as they are made.
pub enum TextChunks {}

impl Payload for TextChunks {
    const CONTENT_TYPE: &'static str = "text/plain; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some(
                "One line per chunk, `Data Chunk {index}` and a line feed: the `text` of each \
                 Chunk, in order. Chunked transfer; each line is written as it is made.",
            ),
            example: Some("Data Chunk 0\nData Chunk 1\nData Chunk 2\n".into()),
            ..MetaSchema::new("string")
        }))
    }
}

impl Media for TextChunks {
    const DESCRIPTION: &'static str =
        "The chunks `start .. count`, one line each, written as they are made.";
}

#[OpenApi]
impl TextApi {
    /// Stream chunks as plain text
    ///
    /// One line `Data Chunk {index}` per chunk, in a chunked response written as the
    /// generator makes each line: the Flask generator example, in Rust.
    #[oai(path = "/stream", method = "get", tag = "Tag::Stream")]
    async fn stream_text(
        &self,
        state: Data<&State>,
        query: StreamQuery,
        req: &Request,
    ) -> Result<Streamed<TextChunks>, StreamError> {
        state.stream(Transport::Text, query, req, TextLines::default())
    }
}
