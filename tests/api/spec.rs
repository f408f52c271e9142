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
async fn spec_documents_the_text_stream() {
    let app = spawn_app().await;
    let spec: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    let op = &spec["paths"]["/stream"]["get"];
    let param = |name: &str| {
        op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("parameter {name}"))
            .clone()
    };
    assert_eq!(param("count")["schema"]["default"], 10);
    assert_eq!(param("count")["schema"]["maximum"], 100_000_000.0);
    assert_eq!(param("interval_ms")["schema"]["maximum"], 60_000.0);
    assert_eq!(param("start")["schema"]["default"], 0);
    let responses = &op["responses"];
    assert!(responses["200"]["content"]["text/plain; charset=utf-8"].is_object());
    assert_eq!(
        responses["400"]["content"]["application/json; charset=utf-8"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert!(responses["503"]["headers"]["RETRY-AFTER"].is_object());
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
