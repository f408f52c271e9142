//! Schemathesis-style fuzzing from the served spec: every operation, parameters drawn from
//! valid and hostile values, and every answer must be a status the spec documents, never a
//! 5xx. (Schemathesis itself was run too; see the README.)

use std::{collections::BTreeSet, time::Duration};

use crate::helpers::{spawn_app, wait_until};

/// Values for any parameter: edges of the documented ranges, and things that are not numbers.
const VALUES: &[&str] = &[
    "0",
    "1",
    "3",
    "10",
    "007",
    "59999",
    "60000",
    "60001",
    "99999998",
    "100000000",
    "100000001",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999",
    "-1",
    "-0",
    "+1",
    "1.5",
    "1e3",
    "0x10",
    "",
    " ",
    "abc",
    "%00",
    "%FF",
    "%C3%A9",
    "null",
    "[]",
];

/// A small deterministic generator (xorshift), so a failure can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, values: &[&'a str]) -> &'a str {
        values[(self.next() % values.len() as u64) as usize]
    }
}

#[tokio::test]
async fn fuzzed_requests_get_only_documented_statuses_and_no_5xx() {
    let app = spawn_app().await;
    let spec: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    let mut rng = Rng(0x5eed_c0ff_ee15_600d);
    let mut seen = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let documented: BTreeSet<u16> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|s| s.parse().unwrap())
                .collect();
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for case in 0..60 {
                let (mut query, mut headers) = (Vec::new(), Vec::new());
                for p in &params {
                    if rng.next() % 3 == 0 {
                        continue; // leave it out: its default applies
                    }
                    let name = p["name"].as_str().unwrap();
                    let value = rng.pick(VALUES);
                    match p["in"].as_str().unwrap() {
                        "query" => query.push(format!("{name}={value}")),
                        "header" => headers.push((name, value)),
                        other => panic!("unexpected parameter location {other}"),
                    }
                }
                let url = format!("{}?{}", app.url(path), query.join("&"));
                let what = format!("case {case}: {method} {url} {headers:?}");
                let mut req = app
                    .client
                    .request(method.to_uppercase().parse().unwrap(), &url);
                for (name, value) in headers {
                    req = req.header(name, value);
                }
                let resp = tokio::time::timeout(Duration::from_secs(5), req.send())
                    .await
                    .unwrap_or_else(|_| panic!("{what}: no answer"))
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let status = resp.status().as_u16();
                assert!(status < 500, "{what}: {status}");
                assert!(
                    documented.contains(&status),
                    "{what}: undocumented {status}"
                );
                if status >= 400 {
                    let body: serde_json::Value = resp.json().await.expect(&what);
                    assert!(body["error"].is_string(), "{what}: {body}");
                }
                seen.insert((path.clone(), status));
            }
        }
    }
    // The fuzzing reached both the streams and their refusals.
    assert!(seen.contains(&("/stream".into(), 200)), "{seen:?}");
    assert!(seen.contains(&("/stream".into(), 400)), "{seen:?}");
    assert!(seen.contains(&("/stream/sse".into(), 204)), "{seen:?}");
    // Every stream the fuzzing opened and dropped was closed.
    wait_until(
        Duration::from_secs(1),
        "every fuzzed stream to close",
        || async {
            let m = app.metrics().await;
            ["text", "sse", "ws"]
                .iter()
                .all(|t| m[&format!("chunkstream_open_streams{{transport=\"{t}\"}}")] == 0.0)
        },
    )
    .await;
}
