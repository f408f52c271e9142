//! `GET /healthz` and `GET /metrics`.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json, payload::PlainText};

use super::{State, Tag};

/// Health and metrics.
#[derive(Default)]
pub struct OpsApi;

/// The server's health.
#[derive(Debug, Object)]
pub struct Health {
    /// Always `ok` while the server answers.
    pub status: String,
}

/// Metrics in the Prometheus text format.
#[derive(ApiResponse)]
pub enum MetricsResponse {
    /// `chunkstream_open_streams`, `chunkstream_chunks_sent_total` and
    /// `chunkstream_streams_total`, labelled by `transport` (and `outcome`).
    #[oai(
        status = 200,
        content_type = "text/plain; version=0.0.4; charset=utf-8"
    )]
    Ok(PlainText<String>),
}

#[OpenApi]
impl OpsApi {
    /// Health check
    #[oai(path = "/healthz", method = "get", tag = "Tag::Operations")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health {
            status: "ok".to_owned(),
        })
    }

    /// Prometheus metrics
    ///
    /// Open streams and chunks sent per transport, and streams ended per outcome.
    #[oai(path = "/metrics", method = "get", tag = "Tag::Operations")]
    async fn metrics(&self, state: Data<&State>) -> MetricsResponse {
        MetricsResponse::Ok(PlainText(state.streams().metrics().render()))
    }
}
