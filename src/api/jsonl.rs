//! `GET /stream/jsonl`: the chunks as JSON Lines, for `fetch()` and `curl | jq`.

use poem::Request;
use poem_openapi::{
    ApiResponse, OpenApi,
    param::Query,
    payload::Payload,
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::Type,
};

use super::{ChunkSchema, Shared, StreamError, Streamed, Tag, default_count, params};
use crate::transport::{Transport, jsonl::JsonLines};

/// The JSON Lines transport.
pub struct JsonlApi(pub Shared);

/// `application/jsonl`: one Chunk as JSON per line, written as they are made.
pub enum JsonlChunks {}

impl Payload for JsonlChunks {
    const CONTENT_TYPE: &'static str = "application/jsonl";

    fn schema_ref() -> MetaSchemaRef {
        // Like OpenAPI 3.2's `itemSchema` for sequential media types: the schema of a line.
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some(
                "One line per chunk: the Chunk as JSON (see the `Chunk` schema), then a line \
                 feed. Chunked transfer; each line is written as it is made.",
            ),
            items: Some(Box::new(ChunkSchema::schema_ref())),
            example: Some(
                "{\"index\":0,\"text\":\"Data Chunk 0\"}\n{\"index\":1,\"text\":\"Data Chunk 1\"}\n"
                    .into(),
            ),
            ..MetaSchema::new_with_format("array", "jsonl")
        }))
    }

    fn register(registry: &mut Registry) {
        ChunkSchema::register(registry);
    }
}

/// A JSON Lines stream.
#[derive(ApiResponse)]
pub enum JsonlResponse {
    /// The chunks `start .. count`, one JSON object per line, written as they are made.
    #[oai(status = 200)]
    Ok(Streamed<JsonlChunks>),
}

#[OpenApi]
impl JsonlApi {
    /// Stream chunks as JSON Lines
    ///
    /// One line per chunk, the Chunk as JSON (`{"index":0,"text":"Data Chunk 0"}`) and a
    /// line feed, in a chunked response written as the generator makes each line. Read it
    /// with `curl -N … | jq -c`, or with `fetch()` and a line splitter. Resume with `start`.
    #[oai(path = "/stream/jsonl", method = "get", tag = "Tag::Stream")]
    async fn stream_jsonl(
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
    ) -> Result<JsonlResponse, StreamError> {
        let params = params(count.0, interval_ms.0, start.0)?;
        let body = self
            .0
            .body(Transport::Jsonl, params, req, JsonLines::default())?;
        Ok(JsonlResponse::Ok(Streamed::new(body)))
    }
}
