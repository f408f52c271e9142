//! Streaming payloads: a body that is written as it is made, documented with its media type.
//!
//! poem-openapi's `PlainText` cannot stream and its `EventStream` writes one frame per event,
//! so the transports build the `Body` and these types give it a media type and a schema.

use poem::{
    Body, IntoResponse, Response,
    http::{HeaderValue, header},
};
use poem_openapi::{
    Enum, Object, Union,
    payload::Payload,
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::Type,
};

use super::ChunkSchema;

/// Headers every streaming body carries: no caching, and no buffering by proxies (nginx).
/// (Static values: nothing to parse or allocate per stream.)
fn streaming(body: Body, content_type: &'static str) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, HeaderValue::from_static(content_type))
        .header(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))
        .header("x-accel-buffering", HeaderValue::from_static("no"))
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

/// The name of a chunk event.
#[derive(Enum)]
#[oai(rename_all = "lowercase")]
enum ChunkEventName {
    /// `event: chunk`
    Chunk,
}

/// The name of the end event.
#[derive(Enum)]
#[oai(rename_all = "lowercase")]
enum EndEventName {
    /// `event: end`
    End,
}

/// One chunk, as an event: `id: <index>`, `event: chunk`, `data: <Chunk as JSON>`.
#[derive(Object)]
struct ChunkEvent {
    /// `chunk`.
    event: ChunkEventName,
    /// The chunk's index; what the browser sends back as `Last-Event-ID`.
    #[oai(validator(pattern = r"^[0-9]{1,20}$"))]
    id: String,
    /// The Chunk (see the `Chunk` schema) as JSON, e.g.
    /// `{"index":0,"text":"Data Chunk 0"}`.
    data: String,
}

/// The last event of a complete stream: `event: end`, `data: {"count": <count>}`. A stream
/// cut by a server shutdown ends without it, so that the client reconnects and resumes.
#[derive(Object)]
struct EndEvent {
    /// `end`.
    event: EndEventName,
    /// `{"count": <count>}`: the stream's length.
    data: String,
    /// Not sent with this event; an `EventSource` keeps the last chunk's id.
    id: Option<String>,
}

/// An event of the stream (OpenAPI 3.0 has no schema for a stream; like OpenAPI 3.2's
/// `itemSchema`, this describes each event, as tools such as Schemathesis read it).
#[derive(Union)]
#[oai(one_of)]
#[allow(dead_code)] // Documentation only: the transport writes the events itself.
enum StreamEvent {
    Chunk(ChunkEvent),
    End(EndEvent),
}

impl Payload for EventChunks {
    const CONTENT_TYPE: &'static str = "text/event-stream";

    fn schema_ref() -> MetaSchemaRef {
        StreamEvent::schema_ref()
    }

    fn register(registry: &mut Registry) {
        StreamEvent::register(registry);
        ChunkSchema::register(registry);
    }
}

impl IntoResponse for EventChunks {
    fn into_response(self) -> Response {
        streaming(self.0, Self::CONTENT_TYPE)
    }
}
