//! The poem-openapi service: one operation per transport over one skeleton, validation,
//! JSON errors and the spec.
//!
//! A stream operation reads its parameters with [`StreamQuery`] (declared in the spec once,
//! by [`StreamOperations`]), opens its stream with [`State::open`] (or, over HTTP,
//! [`State::stream`]: the body in its encoder's format) and answers with [`Streamed`] in its
//! media type, or with a [`StreamError`].

mod errors;
mod jsonl;
mod ops;
mod params;
mod sse;
mod state;
mod streamed;
mod text;
mod ws;

use poem_openapi::{OpenApi, OpenApiService, Tags};

pub use self::{
    errors::{ErrorBody, StreamError},
    params::{StreamOperations, StreamQuery},
    state::{HeadRequest, State},
    streamed::{ChunkSchema, Streamed},
};

/// Operation groups in Swagger UI.
#[derive(Tags)]
enum Tag {
    /// The same lazy generator of chunks, streamed every way.
    Stream,
    /// Health and metrics.
    Operations,
}

/// Every operation group of the API: the stream operations (each takes the stream
/// parameters), then health and metrics. The operations read the [`State`] from the request
/// (poem's `Data`), which the app's routes add.
type Apis = (
    StreamOperations<(text::TextApi, sse::SseApi, ws::WsApi, jsonl::JsonlApi)>,
    ops::OpsApi,
);

/// The service: every operation, ready to nest under `/`.
pub type Service = OpenApiService<Apis, ()>;

/// The paths of the API's operations, from its own metadata. They are exact: no operation
/// has a path parameter (a test checks it).
pub fn paths() -> Vec<String> {
    <Apis as OpenApi>::meta()
        .into_iter()
        .flat_map(|api| api.paths)
        .map(|path| path.path)
        .collect()
}

/// The OpenAPI service: every operation; its endpoint needs the [`State`] added as data.
pub fn service() -> Service {
    OpenApiService::new(Apis::default(), "chunkstream", env!("CARGO_PKG_VERSION"))
        .description(include_str!("description.md"))
}

/// The OpenAPI document, exactly as `GET /openapi.json` serves it and `openapi.json` holds it.
pub fn document() -> String {
    let mut doc = service().spec();
    doc.push('\n');
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_the_specs_exact_paths() {
        let spec: serde_json::Value =
            serde_json::from_str(&super::document()).expect("the spec is JSON");
        let mut in_spec: Vec<&String> = spec["paths"].as_object().expect("paths").keys().collect();
        let mut paths = super::paths();
        paths.sort();
        in_spec.sort();
        assert_eq!(paths.iter().collect::<Vec<_>>(), in_spec);
        assert!(paths.iter().all(|path| !path.contains('{')), "{paths:?}");
    }
}
