//! `GET /stream`: the chunks as lines of `text/plain`.

use poem::Request;
use poem_openapi::{
    ApiResponse, OpenApi,
    param::Query,
    payload::Payload,
    registry::{MetaSchema, MetaSchemaRef},
};

use super::{Shared, StreamError, Streamed, Tag, default_count, params};
use crate::transport::{Transport, text::TextLines};

/// The text transport.
pub struct TextApi(pub Shared);

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

/// A text stream.
#[derive(ApiResponse)]
pub enum TextResponse {
    /// The chunks `start .. count`, one line each, written as they are made.
    #[oai(status = 200)]
    Ok(Streamed<TextChunks>),
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
        /// Length of the stream: chunks `start .. count` are sent.
        #[oai(
            default = "default_count",
            validator(minimum(value = "0"), maximum(value = "100000000"))
        )]
        count: Query<u64>,
        /// Pause between two chunks, in milliseconds (0: as fast as the client reads).
        #[oai(default, validator(minimum(value = "0"), maximum(value = "60000")))]
        interval_ms: Query<u64>,
        /// Index of the first chunk, at most `count` (a resume point).
        #[oai(default, validator(minimum(value = "0"), maximum(value = "100000000")))]
        start: Query<u64>,
        req: &Request,
    ) -> Result<TextResponse, StreamError> {
        let params = params(count.0, interval_ms.0, start.0)?;
        let body = self
            .0
            .body(Transport::Text, params, req, TextLines::default())?;
        Ok(TextResponse::Ok(Streamed::new(body)))
    }
}
