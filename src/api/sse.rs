//! `GET /stream/sse`: the chunks as Server-Sent Events, resumable with `Last-Event-ID`.

use poem::{Request, web::Data};
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi, Union,
    param::Header,
    registry::{MetaSchemaRef, Registry},
    types::Type,
};

use super::{ChunkSchema, State, StreamError, StreamQuery, Streamed, Tag, streamed::Media};
use crate::{streams::Transport, transport::sse::SseEvents};

/// The SSE transport: its operation, and what its body holds.
#[derive(Default)]
pub struct SseApi;

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

/// An event of the stream: a chunk, or the end. It is the `itemSchema` of
/// `text/event-stream` in the OpenAPI 3.2 document (`/openapi.json`); the 3.0 document
/// (`/openapi-3.0.json`) has no schema for a stream's items and uses it as the `schema`.
#[derive(Union)]
#[oai(one_of)]
#[allow(dead_code)] // Documentation only: the transport writes the events itself.
enum StreamEvent {
    Chunk(ChunkEvent),
    End(EndEvent),
}

/// An event stream, or nothing left to resume.
#[derive(ApiResponse)]
pub enum SseResponse {
    /// The events: `retry`, one `chunk` event per chunk (its `id` is the chunk's index),
    /// then an `end` event with the stream's `count`.
    #[oai(status = 200)]
    Ok(Streamed<SseApi>),
    /// `Last-Event-ID` was the last chunk of the stream (or past it): nothing is left to
    /// send. This status is what tells an `EventSource` to stop reconnecting.
    #[oai(status = 204)]
    NothingLeft,
}

/// The header browsers send when they reconnect.
const LAST_EVENT_ID: &str = "Last-Event-ID";

/// Where a stream resumes: the chunk after `Last-Event-ID`, or `None` when none is left.
///
/// The header is a decimal index (the spec's pattern is checked by the framework before
/// this runs); one too large for `u64` is past every stream's end, not an error.
fn resume_point(last_event_id: &str, count: u64) -> Option<u64> {
    let next = last_event_id.parse::<u64>().ok()?.checked_add(1)?;
    (next < count).then_some(next)
}

#[OpenApi]
impl SseApi {
    /// Stream chunks as Server-Sent Events
    ///
    /// For `EventSource`: each chunk is an event `chunk` whose `id` is the chunk's index and
    /// whose `data` is the Chunk as JSON; after the last, an event `end` (`data:
    /// {"count": …}`) says the stream is complete, so the client can `close()`. After a lost
    /// connection the browser reconnects with `Last-Event-ID` and the stream resumes at the
    /// next chunk: no gap, no duplicate, no state kept on the server (chunk *i* is a pure
    /// function of *i*, so any instance can resume any stream). A stream cut by a server
    /// shutdown ends without `end`, so clients reconnect and resume. A `: keep-alive`
    /// comment is sent after a silence of `--sse-keep-alive-secs` (15 s).
    #[oai(path = "/stream/sse", method = "get", tag = "Tag::Stream")]
    async fn stream_sse(
        &self,
        state: Data<&State>,
        query: StreamQuery,
        /// The `id` of the last event received (browsers send it when they reconnect): the
        /// stream resumes at the chunk after it, overriding `start`. Past the end: 204.
        #[oai(name = "Last-Event-ID", validator(pattern = r"^[0-9]{1,20}$"))]
        last_event_id: Header<Option<String>>,
        req: &Request,
    ) -> Result<SseResponse, StreamError> {
        let StreamQuery(mut params) = query;
        // poem-openapi reads a header that is not visible ASCII as absent: that would
        // silently restart the stream from `start`, so refuse it instead.
        if last_event_id.0.is_none() && req.headers().contains_key(LAST_EVENT_ID) {
            return Err(StreamError::bad_request(
                "header `Last-Event-ID` must be a decimal event id",
            ));
        }
        if let Some(id) = last_event_id.0.as_deref() {
            match resume_point(id, params.count()) {
                Some(next) => params = params.resumed_at(next)?,
                None => return Ok(SseResponse::NothingLeft),
            }
        }
        let config = state.config();
        let events = SseEvents::new(config.sse_retry_ms, config.sse_keep_alive());
        let events = state.stream(Transport::Sse, params, req, events)?;
        Ok(SseResponse::Ok(events))
    }
}

/// The body: one `chunk` event per Chunk, then an `end` event.
impl Media for SseApi {
    const CONTENT_TYPE: &'static str = "text/event-stream";
    const DESCRIPTION: &'static str = "The events: `retry`, one `chunk` event per chunk (its \
        `id` is the chunk's index), then an `end` event with the stream's `count`.";

    fn schema() -> MetaSchemaRef {
        StreamEvent::schema_ref()
    }

    fn register(registry: &mut Registry) {
        StreamEvent::register(registry);
        ChunkSchema::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::resume_point;

    #[test]
    fn resumes_after_the_last_event_id() {
        assert_eq!(resume_point("0", 10), Some(1));
        assert_eq!(resume_point("007", 10), Some(8));
        assert_eq!(resume_point("8", 10), Some(9));
        assert_eq!(resume_point("9", 10), None, "the last chunk was received");
        assert_eq!(resume_point("500", 10), None, "past the end");
        assert_eq!(resume_point("18446744073709551615", 10), None, "u64::MAX");
        assert_eq!(resume_point("99999999999999999999", 10), None, "past u64");
    }
}
