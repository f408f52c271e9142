//! `GET /stream`: the chunks as lines of `text/plain`.

use poem::{Request, web::Data};
use poem_openapi::{
    OpenApi,
    registry::{MetaSchema, MetaSchemaRef},
};

use super::{
    State, StreamError, StreamQuery, Streamed, Tag,
    streamed::{Media, described},
};
use crate::{streams::Transport, transport::text::TextLines};

/// The text transport: its operation, and what its body holds.
#[derive(Default)]
pub struct TextApi;

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
    ) -> Result<Streamed<Self>, StreamError> {
        state.stream(Transport::Text, query.0, req, TextLines::default())
    }
}

/// The body: `text/plain` lines, one per chunk, written as they are made.
impl Media for TextApi {
    const CONTENT_TYPE: &'static str = "text/plain; charset=utf-8";
    const DESCRIPTION: &'static str =
        "The chunks `start .. count`, one line each, written as they are made.";

    fn schema() -> MetaSchemaRef {
        let lines = "One line per chunk, `Data Chunk {index}` and a line feed: the `text` of \
                     each Chunk, in order. Chunked transfer; each line is written as it is made.";
        described(
            MetaSchema::new("string"),
            lines,
            "Data Chunk 0\nData Chunk 1\nData Chunk 2\n",
        )
    }
}
