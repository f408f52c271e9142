//! `GET /stream/ws`: the chunks as WebSocket text frames.

use poem_openapi::OpenApi;

use super::Shared;

/// The WebSocket transport.
pub struct WsApi(pub Shared);

#[OpenApi]
impl WsApi {}
