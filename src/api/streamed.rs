//! What a stream operation answers: [`Streamed`], a body written as the generator makes it,
//! in a media type that says in the spec what the body holds; and the `Chunk` schema.

use std::marker::PhantomData;

use crate::streams::Encoding;
use poem::{
    Body, IntoResponse, Response,
    http::{HeaderValue, header},
};
use poem_openapi::{
    ApiResponse, Object,
    payload::Payload,
    registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry},
    types::Example,
};

/// A streamed media type: what the spec says of a stream operation's `200` and its body.
pub trait Media {
    /// The body's `Content-Type`.
    const CONTENT_TYPE: &'static str;
    /// The `200` response's description.
    const DESCRIPTION: &'static str;
    /// The body's schema.
    fn schema() -> MetaSchemaRef;
    /// Registers the schemas [`Media::schema`] refers to.
    fn register(_registry: &mut Registry) {}
}

/// `schema` with its `description` and an `example` of the body.
pub fn described(
    schema: MetaSchema,
    description: &'static str,
    example: &'static str,
) -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        description: Some(description),
        example: Some(example.into()),
        ..schema
    }))
}

/// A stream operation's body, written as the generator makes it, in media type `M` (what
/// the spec says of the body) and content coding `encoding`.
pub struct Streamed<M> {
    body: Body,
    encoding: Encoding,
    media: PhantomData<fn() -> M>,
}

impl<M> Streamed<M> {
    /// `body`, in media type `M`, compressed in `encoding`.
    pub fn new(body: Body, encoding: Encoding) -> Self {
        Self {
            body,
            encoding,
            media: PhantomData,
        }
    }
}

impl<M: Media> Payload for Streamed<M> {
    const CONTENT_TYPE: &'static str = M::CONTENT_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        M::schema()
    }

    fn register(registry: &mut Registry) {
        M::register(registry);
    }
}

impl<M: Media> IntoResponse for Streamed<M> {
    /// With the headers every streamed body carries: no caching, no buffering by proxies
    /// (nginx), and which content coding it has, chosen by `Accept-Encoding` (`Vary`).
    /// Static values: nothing to parse or allocate per stream.
    fn into_response(self) -> Response {
        let mut response = Response::builder()
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static(M::CONTENT_TYPE),
            )
            .header(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))
            .header("x-accel-buffering", HeaderValue::from_static("no"))
            .header(header::VARY, HeaderValue::from_static("accept-encoding"));
        if self.encoding != Encoding::Identity {
            response = response.header(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(self.encoding.as_str()),
            );
        }
        response.body(self.body)
    }
}

impl<M: Media> ApiResponse for Streamed<M> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: M::DESCRIPTION,
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: M::CONTENT_TYPE,
                    schema: M::schema(),
                }],
                headers: Vec::new(),
            }],
        }
    }

    fn register(registry: &mut Registry) {
        M::register(registry);
    }
}

/// One chunk as JSON (an SSE `data:` line, a WebSocket text message, a JSON line). Chunk *i*
/// is a pure function of *i*: `{"index": i, "text": "Data Chunk i"}`.
#[derive(Debug, Object)]
#[oai(rename = "Chunk", example)]
pub struct ChunkSchema {
    /// Position of the chunk in the stream, from 0; the SSE event id.
    pub index: u64,
    /// `Data Chunk {index}`.
    pub text: String,
}

impl Example for ChunkSchema {
    fn example() -> Self {
        Self {
            index: 0,
            text: "Data Chunk 0".to_owned(),
        }
    }
}
