//! Streaming payloads: a body that is written as it is made, documented with its media type.
//!
//! poem-openapi's `PlainText` cannot stream and its `EventStream` writes one frame per event,
//! so the transports build the `Body` and these types give it a media type and a schema.

use poem::{Body, IntoResponse, Response, http::header};
use poem_openapi::{
    payload::Payload,
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::Type,
};

use super::ChunkSchema;

/// Headers every streaming body carries: no caching, and no buffering by proxies (nginx).
fn streaming(body: Body, content_type: &'static str) -> Response {
    Response::builder()
        .content_type(content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header("X-Accel-Buffering", "no")
        .body(body)
}

/// `text/plain` lines, one per chunk, written as they are made.
pub struct TextChunks(pub Body);

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

impl IntoResponse for TextChunks {
    fn into_response(self) -> Response {
        streaming(self.0, Self::CONTENT_TYPE)
    }
}

/// `text/event-stream`: one `chunk` event per Chunk, then an `end` event.
pub struct EventChunks(pub Body);

impl Payload for EventChunks {
    const CONTENT_TYPE: &'static str = "text/event-stream";

    fn schema_ref() -> MetaSchemaRef {
        // OpenAPI 3.0 cannot describe a stream of events; like poem-openapi's own
        // `EventStream` we say "array of Chunk in event-stream format".
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some(
                "Server-Sent Events: first `retry: <ms>`; then per chunk `id: <index>`, \
                 `event: chunk`, `data: <Chunk as JSON>`; after the last chunk `event: end`, \
                 `data: {\"count\": <count>}`. A `: keep-alive` comment is sent after a period \
                 of silence. A stream cut by a server shutdown ends without `end`: reconnect \
                 with `Last-Event-ID` to resume.",
            ),
            items: Some(Box::new(ChunkSchema::schema_ref())),
            ..MetaSchema::new_with_format("array", "event-stream")
        }))
    }

    fn register(registry: &mut Registry) {
        ChunkSchema::register(registry);
    }
}

impl IntoResponse for EventChunks {
    fn into_response(self) -> Response {
        streaming(self.0, Self::CONTENT_TYPE)
    }
}
