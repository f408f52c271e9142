//! The OpenAPI document: served, committed, and saying what the contract says.

use std::{path::PathBuf, process::Command};

use serde_json::{Value, json};

use crate::helpers::{binary, needs, spawn_app};

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
    // OpenAPI 3.2: `itemSchema` is each event (a chunk or the end); `schema` the whole
    // stream, an array of them.
    let events = &responses["200"]["content"]["text/event-stream"];
    let event = json!({ "$ref": "#/components/schemas/StreamEvent" });
    assert_eq!(events["itemSchema"], event);
    assert_eq!(events["schema"], json!({ "type": "array", "items": event }));
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
    // Each event's `data` is JSON, of a schema of its own; `retry` is an integer.
    for (event, data) in [("ChunkEvent", "Chunk"), ("EndEvent", "EndData")] {
        let properties = &schemas[event]["properties"];
        assert_eq!(
            properties["data"]["contentMediaType"], "application/json",
            "{event}"
        );
        assert_eq!(
            properties["data"]["contentSchema"]["$ref"],
            format!("#/components/schemas/{data}"),
            "{event}"
        );
        assert_eq!(properties["retry"]["type"], "integer", "{event}");
    }
    for status in ["204", "400", "503"] {
        assert!(responses[status].is_object(), "{status} documented");
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_2_and_the_3_0_one_is_poem_openapis() {
    let app = spawn_app().await;
    let served: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(served["openapi"], "3.2.0");
    let printed = binary(&["openapi"], &[])
        .output()
        .expect("run chunkstream openapi");
    assert!(printed.status.success());
    let printed: Value = serde_json::from_slice(&printed.stdout).expect("JSON");
    assert_eq!(
        printed, served,
        "`chunkstream openapi` prints the served document"
    );

    let resp = app.get("/openapi-3.0.json").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let old = resp.text().await.unwrap();
    assert_eq!(old, chunkstream::api::document_3_0());
    let old: Value = serde_json::from_str(&old).unwrap();
    assert_eq!(old["openapi"], "3.0.0");
    assert_eq!(
        old["paths"]
            .as_object()
            .map(|p| p.keys().collect::<Vec<_>>()),
        served["paths"]
            .as_object()
            .map(|p| p.keys().collect::<Vec<_>>()),
        "the same API"
    );
    // The 3.0 document keeps its one-event schema: 3.0 has no itemSchema.
    let events =
        &old["paths"]["/stream/sse"]["get"]["responses"]["200"]["content"]["text/event-stream"];
    assert!(events["itemSchema"].is_null());
    assert_eq!(events["schema"]["$ref"], "#/components/schemas/StreamEvent");
}

#[tokio::test]
async fn json_lines_describe_each_line_as_a_chunk() {
    let app = spawn_app().await;
    let spec: Value = app.get("/openapi.json").await.json().await.unwrap();
    let lines =
        &spec["paths"]["/stream/jsonl"]["get"]["responses"]["200"]["content"]["application/jsonl"];
    let chunk = json!({ "$ref": "#/components/schemas/Chunk" });
    assert_eq!(lines["itemSchema"], chunk);
    assert_eq!(lines["schema"]["type"], "array");
    assert_eq!(lines["schema"]["items"], chunk);
    assert!(lines["schema"]["format"].is_null(), "no made-up format");
    // The example is the stream as sent: JSON lines.
    let example = lines["example"].as_str().expect("a serialized example");
    for line in example.lines() {
        let item: Value = serde_json::from_str(line).expect("each line is JSON");
        assert!(item["index"].is_u64() && item["text"].is_string(), "{item}");
    }
}

/// The Python tools' venv that `./scripts/test.sh` makes (openapi-spec-validator,
/// Schemathesis and jsonschema, at pinned versions, from PyPI), if it is there.
fn spec_tools() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let bin = target.join("spec-tools/bin");
    let installed = ["python", "openapi-spec-validator", "st"]
        .iter()
        .all(|tool| bin.join(tool).is_file());
    needs(
        "openapi-spec-validator and Schemathesis (./scripts/test.sh makes their venv in target/)",
        installed,
    )
    .then_some(bin)
}

/// Runs `command`, returning whether it succeeded and what it printed.
fn run(mut command: Command) -> (bool, String) {
    let out = command.output().expect("the tool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn the_3_2_document_is_valid_for_openapi_spec_validator() {
    let Some(tools) = spec_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let committed = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let mut validate = Command::new(tools.join("openapi-spec-validator"));
    validate.args(["--schema", "3.2", committed]);
    let (valid, said) = run(validate);
    assert!(valid, "openapi.json is not valid OpenAPI 3.2:\n{said}");

    // The validator can say no: an item schema that is no schema, and a media type field
    // that 3.2 does not have.
    let doc: Value = serde_json::from_str(&chunkstream::api::document()).unwrap();
    let events = "/paths/~1stream~1sse/get/responses/200/content/text~1event-stream";
    for (case, field, value) in [
        ("an itemSchema that is a number", "itemSchema", json!(5)),
        ("an unknown media type field", "itemSchemas", json!({})),
    ] {
        let mut bad = doc.clone();
        bad.pointer_mut(events).expect("the SSE media type")[field] = value;
        let path = dir.path().join("bad.json");
        std::fs::write(&path, bad.to_string()).unwrap();
        let mut validate = Command::new(tools.join("openapi-spec-validator"));
        validate.args(["--schema", "3.2"]).arg(&path);
        let (valid, said) = run(validate);
        assert!(!valid, "{case} must be refused:\n{said}");
    }
}

#[tokio::test]
async fn every_streamed_event_and_line_matches_its_item_schema() {
    let Some(tools) = spec_tools() else {
        return;
    };
    let app = spawn_app().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/item_schemas.py");
    let base = app.url("/");
    let checked = tokio::task::spawn_blocking(move || {
        let mut check = Command::new(tools.join("python"));
        check.arg(script).arg(base);
        run(check)
    })
    .await
    .unwrap();
    let (valid, said) = checked;
    eprintln!("{said}");
    assert!(valid, "streamed items against their itemSchema:\n{said}");
    assert!(said.contains("streamed items checked"), "{said}");
}

/// What Schemathesis 4.32 finds in the 3.2 document, as found before it (README): only
/// schema-valid requests rejected for reasons OpenAPI cannot express. Anything else is new.
/// Its hooks (`schemathesis_hooks.py`) shorten a valid request for a stream that would last
/// hours, since Schemathesis reads each response to its end.
#[tokio::test]
async fn schemathesis_finds_nothing_new_in_the_3_2_document() {
    let Some(tools) = spec_tools() else {
        return;
    };
    let app = spawn_app().await;
    // The same document with a chunk event's id made impossible: Schemathesis must see
    // that the events break it (its SSE check, ST108, is on).
    let mut broken: Value = app.get("/openapi.json").await.json().await.unwrap();
    broken["components"]["schemas"]["ChunkEvent"]["properties"]["id"]["pattern"] = "^x$".into();
    let dir = tempfile::tempdir().unwrap();
    let broken_file = dir.path().join("broken.json");
    std::fs::write(&broken_file, broken.to_string()).unwrap();
    let served = app.url("/openapi.json");
    let base = app.url("/");
    let (said, said_broken) = tokio::task::spawn_blocking(move || {
        let hooks = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/api/schemathesis_hooks.py"
        );
        let st = |location: &std::ffi::OsStr| {
            let mut st = Command::new(tools.join("st"));
            st.arg("run")
                .arg(location)
                .args(["--url", &base, "--no-color", "--checks", "all"])
                .args(["--max-examples", "30", "--seed", "1"])
                .args(["--request-timeout", "10"])
                .env("SCHEMATHESIS_HOOKS", hooks);
            run(st).1
        };
        (st(served.as_ref()), st(broken_file.as_os_str()))
    })
    .await
    .unwrap();
    assert!(
        said_broken.contains("ST108"),
        "Schemathesis checks each event against the item schema:\n{said_broken}"
    );
    assert!(
        said.contains("Specification:    Open API 3.2.0"),
        "Schemathesis read the document as 3.2:\n{said}"
    );
    // Its SSE check (ST108) validates every event against itemSchema: none may fail.
    let found: Vec<&str> = said
        .lines()
        .filter(|l| l.trim_start().starts_with("- ST"))
        .map(str::trim)
        .collect();
    for finding in &found {
        assert!(
            finding.starts_with("- ST202 Schema-valid request rejected"),
            "a new finding: {finding}\n{said}"
        );
    }
    for rejection in said
        .lines()
        .filter(|l| l.trim_start().starts_with("`{\"error\""))
    {
        assert!(
            rejection.contains("`start` must be at most `count`")
                || rejection.contains("not a WebSocket upgrade"),
            "a schema-valid request rejected for a new reason: {rejection}\n{said}"
        );
    }
    assert!(
        !said.contains("ST108") && !said.contains("Server error") && !said.contains("imeout"),
        "{said}"
    );
    assert!(
        said.contains("Test cases:"),
        "Schemathesis ran its cases:\n{said}"
    );
}
