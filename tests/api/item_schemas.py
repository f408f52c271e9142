"""Checks streamed items against the OpenAPI 3.2 document's `itemSchema`.

Run by `tests/api/spec.rs` with the Python of the test tools' venv (jsonschema comes with
openapi-spec-validator), against a running server: `python item_schemas.py BASE_URL`.

For each stream below, every SSE event (parsed as the HTML standard says, each event's
fields as its block sent them) and every JSON line must be valid against the `itemSchema` of
its operation's 200 response, and the JSON inside a string field that declares
`contentMediaType: application/json` against that field's `contentSchema` (which JSON
Schema itself does not apply). Items that break the schemas must be rejected, so that a
checker that accepts everything cannot pass. Exits 1 naming every problem.
"""

import json
import sys
import urllib.request

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:chunkstream:openapi"


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers.get("content-type", ""), response.read()


def sse_events(body):
    """The events of an event stream, each with the fields its block carried."""
    events, fields, data = [], {}, []
    for line in body.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line == "":
            if data:
                fields["data"] = "\n".join(data)
                events.append(fields)
            fields, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name in ("event", "id"):
            fields[name] = value
        elif name == "retry" and value.isdigit():
            fields[name] = int(value)
    return events


class Checker:
    def __init__(self, doc):
        self.registry = Registry().with_resource(
            DOC_URI, Resource(doc, specification=DRAFT202012)
        )
        self.doc = doc

    def resolve(self, schema):
        """`schema`, or what its `$ref` points at in the document."""
        while isinstance(schema, dict) and "$ref" in schema:
            pointer = schema["$ref"].lstrip("#").strip("/").split("/")
            schema = self.doc
            for part in pointer:
                schema = schema[part.replace("~1", "/").replace("~0", "~")]
        return schema

    def problems(self, schema, instance, where):
        """Why `instance` is not valid against `schema`, in words (none when it is)."""
        found = [f"{where}: {e.message}" for e in self.validator(schema).iter_errors(instance)]
        if found:
            return found
        # contentSchema: in the branch the item is valid against, each JSON string field.
        for branch in self.branches(schema):
            if not self.validator(branch).is_valid(instance):
                continue
            for name, field in self.resolve(branch).get("properties", {}).items():
                field = self.resolve(field)
                if field.get("contentMediaType") != "application/json" or name not in instance:
                    continue
                try:
                    content = json.loads(instance[name])
                except (TypeError, ValueError) as err:
                    found.append(f"{where}: `{name}` is not JSON: {err}")
                    continue
                found += self.problems(field.get("contentSchema", {}), content, f"{where}.{name}")
        return found

    def branches(self, schema):
        schema = self.resolve(schema)
        return schema.get("oneOf") or schema.get("anyOf") or [schema]

    def validator(self, schema):
        """A validator of `schema`, whose references resolve in the document."""
        anchored = json.loads(json.dumps(schema).replace('"#/', f'"{DOC_URI}#/'))
        return Draft202012Validator(anchored, registry=self.registry)


def main():
    base = sys.argv[1].rstrip("/")
    _, _, body = get(f"{base}/openapi.json")
    doc = json.loads(body)
    checker = Checker(doc)
    problems = []

    def item_schema(path, media_type):
        content = doc["paths"][path]["get"]["responses"]["200"]["content"][media_type]
        return content["itemSchema"]

    sse = item_schema("/stream/sse", "text/event-stream")
    jsonl = item_schema("/stream/jsonl", "application/jsonl")
    checked = 0

    # (what, query, headers, the event names expected in order)
    sse_cases = [
        ("5 chunks", "count=5", {}, ["chunk"] * 5 + ["end"]),
        ("an empty stream", "count=0", {}, ["end"]),
        ("resumed", "count=6&start=1", {"Last-Event-ID": "3"}, ["chunk"] * 2 + ["end"]),
    ]
    for what, query, headers, names in sse_cases:
        status, ctype, body = get(f"{base}/stream/sse?{query}", headers)
        events = sse_events(body)
        if status != 200 or not ctype.startswith("text/event-stream"):
            problems.append(f"SSE {what}: {status} {ctype}")
        if [e.get("event") for e in events] != names:
            problems.append(f"SSE {what}: events {events}")
        if not events or "retry" not in events[0]:
            problems.append(f"SSE {what}: the first event carries no `retry`: {events[:1]}")
        for i, event in enumerate(events):
            problems += checker.problems(sse, event, f"SSE {what}, event {i} {event}")
            checked += 1

    for what, query in [("5 chunks", "count=5"), ("resumed", "count=8&start=5")]:
        status, ctype, body = get(f"{base}/stream/jsonl?{query}")
        lines = body.decode("utf-8").splitlines()
        if status != 200 or not ctype.startswith("application/jsonl") or not lines:
            problems.append(f"JSON Lines {what}: {status} {ctype} {lines}")
        for i, line in enumerate(lines):
            try:
                item = json.loads(line)
            except ValueError as err:
                problems.append(f"JSON Lines {what}, line {i}: not JSON ({err}): {line!r}")
                continue
            problems += checker.problems(jsonl, item, f"JSON Lines {what}, line {i} {line}")
            checked += 1

    # Items that break the schemas, each for one reason, must be rejected.
    chunk = '{"index":0,"text":"Data Chunk 0"}'
    bad = [
        (sse, {"event": "chunk", "data": chunk, "id": "x"}, "an id that is not an index"),
        (sse, {"event": "chunk", "data": chunk}, "a chunk without its id"),
        (sse, {"event": "other", "data": chunk, "id": "0"}, "an unknown event name"),
        (sse, {"event": "chunk", "data": '{"index":"0","text":"x"}', "id": "0"}, "data against its contentSchema"),
        (sse, {"event": "chunk", "data": "not json", "id": "0"}, "data that is not JSON"),
        (sse, {"event": "end", "data": "{}"}, "an end without its count"),
        (sse, {"event": "chunk", "data": chunk, "id": "0", "retry": -1}, "a negative retry"),
        (jsonl, {"index": 0}, "a line without its text"),
        (jsonl, {"index": "0", "text": "Data Chunk 0"}, "an index that is a string"),
    ]
    for schema, item, why in bad:
        if not checker.problems(schema, item, why):
            problems.append(f"accepted, but must be rejected ({why}): {item}")

    for problem in problems:
        print(problem)
    print(f"{checked} streamed items checked against their itemSchema, {len(bad)} bad ones rejected")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
