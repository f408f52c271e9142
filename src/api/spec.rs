//! The OpenAPI 3.2 document, made from the 3.0 document poem-openapi writes.
//!
//! poem-openapi 5.1 writes OpenAPI 3.0.0, which has no way to describe the items of a stream:
//! there, the project's convention is that a sequential media type's `schema` describes one
//! item (one event, one line). OpenAPI 3.2 says it properly: `itemSchema` is the schema of
//! each item, and `schema` the whole stream, as an array of items. [`to_3_2`] rewrites the
//! 3.0 document into that form, keyed on media types alone, so an operation needs no change
//! to be described: every sequential media type gets an `itemSchema`, and the events of
//! `text/event-stream` say that their `data` is JSON, of which schema.

use poem_openapi::{Object, registry::Registry, types::Type};
use serde_json::{Map, Value, json};

/// The version the rewritten document declares.
pub const VERSION: &str = "3.2.0";

/// Media types whose content is a sequence of items (OpenAPI 3.2, "Sequential Media Types").
const SEQUENTIAL: [&str; 4] = [
    "text/event-stream",
    "application/jsonl",
    "application/x-ndjson",
    "application/json-seq",
];

/// The SSE events of this API whose `data` is JSON: the event's schema and the schema of its
/// `data` (both in `components/schemas`).
const EVENT_DATA: [(&str, &str); 2] = [("ChunkEvent", "Chunk"), ("EndEvent", "EndData")];

/// The `data` of the `end` event: `{"count": …}`.
#[derive(Object)]
#[oai(rename = "EndData", example)]
struct EndData {
    /// The stream's length: the `count` it was asked for.
    count: u64,
}

impl poem_openapi::types::Example for EndData {
    fn example() -> Self {
        Self { count: 10 }
    }
}

/// The OpenAPI 3.2 form of `doc`, a 3.0 document as poem-openapi writes it: the version, an
/// `itemSchema` on every sequential media type (with `schema` the whole stream as an array),
/// JSON `data` declared in the SSE events, and their `retry` field. Parts of `doc` that are
/// not as expected are left as they are.
pub fn to_3_2(mut doc: Value) -> Value {
    let Some(root) = doc.as_object_mut() else {
        return doc;
    };
    root.insert("openapi".to_owned(), VERSION.into());
    let mut streams_events = false;
    for operation in operations(root) {
        for response in objects_mut(operation.get_mut("responses")) {
            for (media_type, content) in entries_mut(response.get_mut("content")) {
                if SEQUENTIAL.contains(&media_type.as_str()) {
                    describe_items(content);
                    streams_events |= media_type == "text/event-stream";
                }
            }
        }
    }
    if streams_events {
        declare_event_data(root);
    }
    doc
}

/// Every operation object of the document's paths.
fn operations(root: &mut Map<String, Value>) -> impl Iterator<Item = &mut Map<String, Value>> {
    objects_mut(root.get_mut("paths"))
        .flat_map(|item| item.values_mut().filter_map(Value::as_object_mut))
}

/// The values of `value` that are objects, if it is an object.
fn objects_mut(value: Option<&mut Value>) -> impl Iterator<Item = &mut Map<String, Value>> {
    entries_mut(value).map(|(_, v)| v)
}

/// The entries of `value` whose values are objects, if it is an object.
fn entries_mut(
    value: Option<&mut Value>,
) -> impl Iterator<Item = (&String, &mut Map<String, Value>)> {
    value
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|map| map.iter_mut())
        .filter_map(|(k, v)| Some((k, v.as_object_mut()?)))
}

/// Rewrites a sequential media type's 3.0 `schema` into `itemSchema` and a whole-stream
/// `schema`. In 3.0 the schema is either already an array of items (`{type: array, items}`,
/// perhaps with a made-up `format` naming the media type) or one item.
fn describe_items(content: &mut Map<String, Value>) {
    let Some(Value::Object(mut schema)) = content.remove("schema") else {
        return;
    };
    let mut example = None;
    let (mut whole, item) = match schema.get("type") {
        Some(t) if t == "array" && schema.contains_key("items") => {
            let item = schema.remove("items").unwrap_or_default();
            schema.remove("format");
            // The example of a whole stream is its serialized form: the media type's, in 3.2.
            example = schema.remove("example");
            (schema, item)
        }
        _ => {
            let mut whole = Map::new();
            if let Some(description) = schema.get("description").filter(|_| !is_ref(&schema)) {
                whole.insert("description".to_owned(), description.clone());
            }
            (whole, Value::Object(schema))
        }
    };
    whole.insert("type".to_owned(), "array".into());
    whole.insert("items".to_owned(), item.clone());
    content.insert("schema".to_owned(), Value::Object(whole));
    content.insert("itemSchema".to_owned(), item);
    if let Some(example) = example {
        content.entry("example").or_insert(example);
    }
}

/// Whether `schema` is a bare reference.
fn is_ref(schema: &Map<String, Value>) -> bool {
    schema.contains_key("$ref")
}

/// Declares, in each SSE event schema of [`EVENT_DATA`], that `data` is JSON of its schema
/// (`contentMediaType`, `contentSchema`), that `retry` (sent in the first event only) is an
/// integer, and gives an example of the event as a parser reads it.
fn declare_event_data(root: &mut Map<String, Value>) {
    let Some(schemas) = root
        .get_mut("components")
        .and_then(|c| c.get_mut("schemas"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if !schemas.contains_key("EndData") {
        schemas.insert("EndData".to_owned(), end_data_schema());
    }
    for (event, data) in EVENT_DATA {
        let example = schemas
            .get(event)
            .and_then(|e| event_name(schemas, e))
            .zip(schemas.get(data).and_then(|d| d.get("example")))
            .map(|(name, data)| event_example(name, data));
        let Some(schema) = schemas.get_mut(event).and_then(Value::as_object_mut) else {
            continue;
        };
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        let Some(field) = properties.get_mut("data").and_then(Value::as_object_mut) else {
            continue;
        };
        field.insert("contentMediaType".to_owned(), "application/json".into());
        field.insert(
            "contentSchema".to_owned(),
            json!({ "$ref": format!("#/components/schemas/{data}") }),
        );
        properties.insert(
            "retry".to_owned(),
            json!({
                "type": "integer",
                "minimum": 0,
                "description": "Sent with the first event of a stream only: how long, in \
                    milliseconds, a client waits before it reconnects (`--sse-retry-ms`).",
            }),
        );
        if let Some(example) = example {
            schema.insert("example".to_owned(), example);
        }
    }
}

/// The one name an event schema allows in `event`: an enum of one value, inline or through
/// `allOf` and a reference into `schemas`.
fn event_name<'a>(schemas: &'a Map<String, Value>, event: &'a Value) -> Option<&'a str> {
    let field = event.get("properties")?.get("event")?;
    let parts = field.get("allOf").and_then(Value::as_array);
    std::iter::once(field)
        .chain(parts.into_iter().flatten())
        .filter_map(|part| match part.get("$ref").and_then(Value::as_str) {
            Some(target) => schemas.get(target.strip_prefix("#/components/schemas/")?),
            None => Some(part),
        })
        .find_map(|schema| match schema.get("enum")?.as_array()?.as_slice() {
            [Value::String(name)] => Some(name.as_str()),
            _ => None,
        })
}

/// An event named `name` whose `data` is `data` as JSON, as an SSE parser reads it; a
/// chunk's event carries its index as `id`.
fn event_example(name: &str, data: &Value) -> Value {
    let mut example = Map::new();
    example.insert("event".to_owned(), name.into());
    example.insert("data".to_owned(), data.to_string().into());
    if let Some(index) = data.get("index") {
        example.insert("id".to_owned(), index.to_string().into());
    }
    Value::Object(example)
}

/// The `EndData` schema, as poem-openapi writes a schema.
fn end_data_schema() -> Value {
    let mut registry = Registry::new();
    EndData::register(&mut registry);
    registry
        .schemas
        .get("EndData")
        .and_then(|schema| serde_json::to_value(schema).ok())
        .unwrap_or_else(|| json!({ "type": "object" }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A 3.0 document with one operation per kind of content, as poem-openapi writes them.
    fn document() -> Value {
        json!({
            "openapi": "3.0.0",
            "info": { "title": "t", "version": "1" },
            "paths": {
                "/sse": { "get": { "responses": { "200": { "description": "", "content": {
                    "text/event-stream": { "schema": { "$ref": "#/components/schemas/StreamEvent" } }
                } } } } },
                "/jsonl": { "get": { "responses": { "200": { "description": "", "content": {
                    "application/jsonl": { "schema": {
                        "type": "array", "format": "jsonl", "description": "lines",
                        "items": { "$ref": "#/components/schemas/Chunk" },
                        "example": "{\"index\":0}\n"
                    } }
                } } } } },
                "/text": { "get": { "responses": { "200": { "description": "", "content": {
                    "text/plain; charset=utf-8": { "schema": { "type": "string" } }
                } } } } },
                "/json": { "get": { "responses": { "400": { "description": "", "content": {
                    "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } }
                } } } } }
            },
            "components": { "schemas": {
                "Chunk": { "type": "object", "example": { "index": 0, "text": "Data Chunk 0" } },
                "ChunkEventName": { "type": "string", "enum": ["chunk"] },
                "ChunkEvent": { "type": "object", "properties": {
                    "event": { "allOf": [ { "$ref": "#/components/schemas/ChunkEventName" } ] },
                    "id": { "type": "string" },
                    "data": { "type": "string" }
                } },
                "EndEvent": { "type": "object", "properties": {
                    "event": { "type": "string", "enum": ["end"] },
                    "data": { "type": "string" }
                } },
                "StreamEvent": { "oneOf": [
                    { "$ref": "#/components/schemas/ChunkEvent" },
                    { "$ref": "#/components/schemas/EndEvent" }
                ] }
            } }
        })
    }

    #[test]
    fn the_document_declares_openapi_3_2() {
        assert_eq!(to_3_2(document())["openapi"], "3.2.0");
    }

    #[test]
    fn an_event_stream_gets_an_item_schema_and_an_array_of_events() {
        let doc = to_3_2(document());
        let content = &doc["paths"]["/sse"]["get"]["responses"]["200"]["content"];
        let events = &content["text/event-stream"];
        let event = json!({ "$ref": "#/components/schemas/StreamEvent" });
        assert_eq!(events["itemSchema"], event);
        assert_eq!(events["schema"], json!({ "type": "array", "items": event }));
    }

    #[test]
    fn json_lines_get_an_item_schema_and_keep_their_example_as_the_media_types() {
        let doc = to_3_2(document());
        let lines =
            &doc["paths"]["/jsonl"]["get"]["responses"]["200"]["content"]["application/jsonl"];
        let chunk = json!({ "$ref": "#/components/schemas/Chunk" });
        assert_eq!(lines["itemSchema"], chunk);
        assert_eq!(
            lines["schema"],
            json!({ "description": "lines", "type": "array", "items": chunk }),
            "no made-up format, no example inside the array's schema"
        );
        assert_eq!(lines["example"], "{\"index\":0}\n");
    }

    #[test]
    fn other_media_types_are_left_as_they_are() {
        let (before, after) = (document(), to_3_2(document()));
        for path in ["/text", "/json"] {
            assert_eq!(before["paths"][path], after["paths"][path], "{path}");
        }
    }

    #[test]
    fn event_data_is_declared_as_json_of_its_schema() {
        let doc = to_3_2(document());
        let schemas = &doc["components"]["schemas"];
        for (event, data) in [("ChunkEvent", "Chunk"), ("EndEvent", "EndData")] {
            let field = &schemas[event]["properties"]["data"];
            assert_eq!(field["type"], "string", "{event}");
            assert_eq!(field["contentMediaType"], "application/json", "{event}");
            assert_eq!(
                field["contentSchema"]["$ref"],
                format!("#/components/schemas/{data}"),
                "{event}"
            );
            assert_eq!(
                schemas[event]["properties"]["retry"]["type"], "integer",
                "{event}"
            );
        }
        assert_eq!(schemas["EndData"]["required"], json!(["count"]));
        assert_eq!(schemas["EndData"]["properties"]["count"]["type"], "integer");
        assert_eq!(
            schemas["ChunkEvent"]["example"],
            json!({
                "event": "chunk",
                "data": "{\"index\":0,\"text\":\"Data Chunk 0\"}",
                "id": "0"
            })
        );
        assert_eq!(
            schemas["EndEvent"]["example"],
            json!({ "event": "end", "data": "{\"count\":10}" })
        );
    }

    #[test]
    fn a_document_without_event_streams_gains_no_event_schemas() {
        let mut doc = document();
        doc["paths"].as_object_mut().expect("paths").remove("/sse");
        let doc = to_3_2(doc);
        assert!(doc["components"]["schemas"]["EndData"].is_null());
        assert!(
            doc["components"]["schemas"]["ChunkEvent"]["properties"]["data"]["contentMediaType"]
                .is_null()
        );
    }

    #[test]
    fn unexpected_shapes_are_left_alone_without_a_panic() {
        let cases = [
            json!(null),
            json!([]),
            json!({}),
            json!({ "paths": [] }),
            json!({ "paths": { "/a": 1 } }),
            json!({ "paths": { "/a": { "get": { "responses": 3 } } } }),
            json!({ "paths": { "/a": { "get": { "responses": { "200": { "content": {
                "text/event-stream": { "schema": 5 }
            } } } } } } }),
            json!({ "paths": { "/a": { "get": { "responses": { "200": { "content": {
                "text/event-stream": { "schema": { "type": "array", "items": 1 } }
            } } } } } }, "components": { "schemas": { "ChunkEvent": 1, "EndEvent": {
                "properties": { "data": 2 } } } } }),
        ];
        for case in cases {
            let out = to_3_2(case.clone());
            if case.is_object() {
                assert_eq!(out["openapi"], "3.2.0", "{case}");
            } else {
                assert_eq!(out, case);
            }
        }
    }
}
