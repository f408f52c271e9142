//! The OpenAPI document: served, committed, and saying what the contract says.

use crate::helpers::spawn_app;

#[tokio::test]
async fn served_spec_is_the_committed_openapi_json() {
    let app = spawn_app().await;
    let resp = app.get("/openapi.json").await;
    assert_eq!(resp.status(), 200);
    let served = resp.text().await.unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json is committed");
    assert!(
        served == committed,
        "openapi.json is stale: run `cargo run -- openapi > openapi.json`"
    );
}

#[tokio::test]
async fn every_stream_operation_documents_the_parameters_the_server_enforces() {
    use chunkstream::{
        generator::{DEFAULT_COUNT, MAX_COUNT, MAX_INTERVAL_MS},
        streams::Transport,
    };
    let app = spawn_app().await;
    let spec: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    for transport in Transport::ALL {
        let path = transport.path();
        let op = &spec["paths"][path]["get"];
        let schema = |name: &str| {
            op["parameters"]
                .as_array()
                .unwrap_or_else(|| panic!("{path}: no parameters"))
                .iter()
                .find(|p| p["name"] == name && p["in"] == "query")
                .unwrap_or_else(|| panic!("{path}: parameter {name}"))["schema"]
                .clone()
        };
        // (parameter, default, maximum): the constants the server validates with.
        for (name, default, maximum) in [
            ("count", DEFAULT_COUNT, MAX_COUNT),
            ("interval_ms", 0, MAX_INTERVAL_MS),
            ("start", 0, MAX_COUNT),
        ] {
            let schema = schema(name);
            assert_eq!(schema["type"], "integer", "{path} {name}");
            assert_eq!(schema["format"], "uint64", "{path} {name}");
            assert_eq!(schema["default"], default, "{path} {name}");
            assert_eq!(schema["minimum"], 0.0, "{path} {name}");
            assert_eq!(schema["maximum"], maximum as f64, "{path} {name}");
            // And the server agrees with what the spec says at both ends.
            let query = |value: u64| match name {
                "start" => format!("{path}?count={MAX_COUNT}&start={value}&interval_ms=60000"),
                _ => format!("{path}?{name}={value}&count=0"),
            };
            assert_eq!(
                app.get(&query(maximum + 1)).await.status(),
                400,
                "{path} {name}"
            );
            if transport == Transport::Ws {
                // Without an upgrade it is refused anyway, but not for this parameter.
                let at_max = app.get(&query(maximum)).await.text().await.unwrap();
                assert!(!at_max.contains(&format!("`{name}`")), "{path}: {at_max}");
            } else {
                let at_max = app
                    .client
                    .head(app.url(&query(maximum)))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(at_max.status(), 200, "{path} {name}={maximum}");
            }
        }
        let responses = &op["responses"];
        assert_eq!(
            responses["400"]["content"]["application/json; charset=utf-8"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "{path}"
        );
        for status in ["429", "503"] {
            assert!(
                responses[status]["headers"]["RETRY-AFTER"].is_object(),
                "{path} {status}"
            );
        }
    }
    let text = &spec["paths"]["/stream"]["get"]["responses"]["200"]["content"];
    assert!(text["text/plain; charset=utf-8"].is_object());
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test]
async fn docs_serve_swagger_ui_from_the_binary() {
    let app = spawn_app().await;
    let resp = app.get("/docs").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("SwaggerUIBundle"),
        "Swagger UI's script is inline"
    );
    assert!(!html.contains("cdn"), "no CDN: /docs must work offline");
    assert!(html.contains("/stream"), "the spec is embedded in the page");
}

#[tokio::test]
async fn page_is_served_at_the_root() {
    let app = spawn_app().await;
    let resp = app.get("/").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn spec_documents_the_event_stream_and_its_resume_header() {
    let app = spawn_app().await;
    let spec: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    let op = &spec["paths"]["/stream/sse"]["get"];
    let header = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Last-Event-ID")
        .expect("Last-Event-ID is documented");
    assert_eq!(header["in"], "header");
    assert_eq!(header["schema"]["pattern"], "^[0-9]{1,20}$");
    let responses = &op["responses"];
    // OpenAPI 3.0 describes each event (as 3.2's itemSchema does): a chunk or the end.
    let stream = &responses["200"]["content"]["text/event-stream"]["schema"];
    assert_eq!(stream["$ref"], "#/components/schemas/StreamEvent");
    let schemas = &spec["components"]["schemas"];
    let one_of: Vec<&str> = schemas["StreamEvent"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["$ref"].as_str().unwrap())
        .collect();
    assert_eq!(
        one_of,
        [
            "#/components/schemas/ChunkEvent",
            "#/components/schemas/EndEvent"
        ]
    );
    assert_eq!(
        schemas["ChunkEvent"]["properties"]["id"]["pattern"],
        "^[0-9]{1,20}$"
    );
    for status in ["204", "400", "503"] {
        assert!(responses[status].is_object(), "{status} documented");
    }
}
