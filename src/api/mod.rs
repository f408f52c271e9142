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
mod spec;
mod sse;
mod state;
mod streamed;
mod text;
mod ws;
mod wt;

use std::collections::HashMap;

use poem::{endpoint::BoxEndpoint, http::Method};
use poem_openapi::{OpenApi, OpenApiService, Tags};

pub use self::{
    errors::{ErrorBody, StreamError},
    params::{StreamOperations, StreamQuery},
    state::{HeadRequest, State, WebTransportSite},
    streamed::{ChunkSchema, Streamed},
    wt::session as webtransport_session,
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
    StreamOperations<(
        text::TextApi,
        sse::SseApi,
        ws::WsApi,
        jsonl::JsonlApi,
        wt::WtApi,
    )>,
    ops::OpsApi,
);

/// The service: every operation, ready to nest under `/`.
pub type Service = OpenApiService<Apis, ()>;

/// Every operation's endpoint, by its path: each a GET at an exact path (no operation has a
/// path parameter), reading the [`State`] from the request's data.
///
/// They are taken from the service's own route table, so that the app can call them
/// directly: poem-openapi's endpoint would route each request again, and parse its query
/// string for `Query` parameters, which no operation here has (the stream parameters are
/// [`StreamQuery`]); tests check both.
pub fn operations() -> Vec<(String, BoxEndpoint<'static>)> {
    let mut table = HashMap::new();
    Apis::default().add_routes(&mut table);
    table
        .into_iter()
        .map(|(path, mut methods)| {
            let get = methods.remove(&Method::GET);
            assert!(methods.is_empty(), "{path}: every operation is a GET");
            (path, get.expect("every operation is a GET"))
        })
        .collect()
}

/// The OpenAPI service: every operation; its endpoint needs the [`State`] added as data.
pub fn service() -> Service {
    OpenApiService::new(Apis::default(), "chunkstream", env!("CARGO_PKG_VERSION"))
        .description(include_str!("description.md"))
}

/// The OpenAPI 3.2 document, exactly as `GET /openapi.json` serves it and `openapi.json`
/// holds it: [`document_3_0`] with each item of every stream described (see [`spec`]).
pub fn document() -> String {
    let doc: serde_json::Value =
        serde_json::from_str(&document_3_0()).expect("poem-openapi writes its document as JSON");
    let mut doc =
        serde_json::to_string_pretty(&spec::to_3_2(doc)).expect("a JSON value serializes");
    doc.push('\n');
    doc
}

/// The OpenAPI 3.0 document as poem-openapi writes it, for tools that read only 3.0
/// (`GET /openapi-3.0.json`).
pub fn document_3_0() -> String {
    let mut doc = service().spec();
    doc.push('\n');
    doc
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn spec() -> Value {
        serde_json::from_str(&super::document()).expect("the spec is JSON")
    }

    #[test]
    fn the_operations_are_the_specs_gets_at_exact_paths() {
        let spec = spec();
        let paths = spec["paths"].as_object().expect("paths");
        let mut in_spec: Vec<&String> = paths.keys().collect();
        let operations = super::operations();
        let mut routed: Vec<&String> = operations.iter().map(|(path, _)| path).collect();
        routed.sort();
        in_spec.sort();
        assert_eq!(routed, in_spec);
        for (path, item) in paths {
            assert!(!path.contains('{'), "{path} has a path parameter");
            let methods: Vec<&String> = item.as_object().expect("a path item").keys().collect();
            assert_eq!(methods, ["get"], "{path}");
        }
    }

    #[test]
    fn no_operation_has_a_query_parameter_but_the_stream_parameters() {
        // poem-openapi's `Query` needs its own endpoint's query parser, which the app's
        // direct routing leaves out: every query parameter must be one of StreamQuery's.
        let spec = spec();
        for (path, item) in spec["paths"].as_object().expect("paths") {
            let params = item["get"]["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let query: Vec<&str> = params
                .iter()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert!(
                query.is_empty() || query == ["count", "interval_ms", "start"],
                "{path}: {query:?}"
            );
        }
    }
}
