//! `GET /stream/jsonl`: the chunks as JSON Lines, for `fetch()` and `curl | jq`.

use poem::{Request, web::Data};
use poem_openapi::{
    OpenApi,
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::Type,
};

use super::{
    ChunkSchema, State, StreamError, StreamQuery, Streamed, Tag,
    streamed::{Media, described},
};
use crate::{streams::Transport, transport::jsonl::JsonLines};

/// The JSON Lines transport: its operation, and what its body holds.
#[derive(Default)]
pub struct JsonlApi;

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
    ) -> Result<Streamed<Self>, StreamError> {
        state.stream(Transport::Jsonl, query.0, req, JsonLines::default())
    }
}

/// The body: one Chunk as JSON per line, written as they are made.
impl Media for JsonlApi {
    const CONTENT_TYPE: &'static str = "application/jsonl";
    const DESCRIPTION: &'static str =
        "The chunks `start .. count`, one JSON object per line, written as they are made.";

    fn schema() -> MetaSchemaRef {
        // Like OpenAPI 3.2's `itemSchema` for sequential media types: the schema of a line.
        let lines = MetaSchema {
            items: Some(Box::new(ChunkSchema::schema_ref())),
            ..MetaSchema::new_with_format("array", "jsonl")
        };
        let description = "One line per chunk: the Chunk as JSON (see the `Chunk` schema), then \
                           a line feed. Chunked transfer; each line is written as it is made.";
        let example =
            "{\"index\":0,\"text\":\"Data Chunk 0\"}\n{\"index\":1,\"text\":\"Data Chunk 1\"}\n";
        described(lines, description, example)
    }

    fn register(registry: &mut Registry) {
        ChunkSchema::register(registry);
    }
}
