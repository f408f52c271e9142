//! `GET /stream/jsonl`: the chunks as JSON Lines, for `fetch()` and `curl | jq`.

use poem::{Request, web::Data};
use poem_openapi::{
    OpenApi,
    payload::Payload,
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::Type,
};

use super::{ChunkSchema, State, StreamError, StreamQuery, Streamed, Tag, streamed::Media};
use crate::{streams::Transport, transport::jsonl::JsonLines};

/// The JSON Lines transport.
#[derive(Default)]
pub struct JsonlApi;

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

impl Media for JsonlChunks {
    const DESCRIPTION: &'static str =
        "The chunks `start .. count`, one JSON object per line, written as they are made.";
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
        state: Data<&State>,
        query: StreamQuery,
        req: &Request,
    ) -> Result<Streamed<JsonlChunks>, StreamError> {
        state.stream(Transport::Jsonl, query, req, JsonLines::default())
    }
}
