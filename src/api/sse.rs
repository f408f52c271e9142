//! `GET /stream/sse`: the chunks as Server-Sent Events.

use poem_openapi::OpenApi;

use super::Shared;

/// The SSE transport.
pub struct SseApi(pub Shared);

#[OpenApi]
impl SseApi {}
