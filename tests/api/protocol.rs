//! HTTP conformance where clients misbehave or merely differ: HEAD wherever GET is served,
//! the `Host` header, HEAD at the stream limit, and the requests hyper refuses itself.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::helpers::{raw, read_until_closed, spawn_app, spawn_app_with};

#[tokio::test]
async fn head_is_answered_wherever_get_is_with_the_same_headers_and_no_body() {
    let app = spawn_app().await;
    for path in [
        "/",
        "/static/app.js",
        "/static/style.css",
        "/openapi.json",
        "/docs/",
        "/healthz",
        "/metrics",
    ] {
        let get = app.get(path).await;
        assert_eq!(get.status(), 200, "GET {path}");
        let get_type = get.headers().get("content-type").cloned();
        let get_len = get.bytes().await.unwrap().len();
        let head = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(
            head.headers().get("content-type"),
            get_type.as_ref(),
            "HEAD {path}"
        );
        if path != "/metrics" {
            // The length of what GET sends (metrics change between the two requests).
            let length = head.headers()["content-length"]
                .to_str()
                .unwrap()
                .to_owned();
            assert_eq!(length, get_len.to_string(), "HEAD {path}");
        }
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path}");
    }
}

#[tokio::test]
async fn head_on_a_stream_route_at_the_limit_gets_what_get_would() {
    let app = spawn_app_with(|c| c.max_streams = 1).await;
    let held = app.get("/stream?count=100&interval_ms=1000").await;
    assert_eq!(held.status(), 200);
    for path in ["/stream", "/stream/sse"] {
        let get = app.get(path).await;
        let head = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(get.status(), 503, "GET {path}");
        assert_eq!(head.status(), 503, "HEAD {path}");
        assert_eq!(head.headers()["retry-after"], "1", "{path}");
    }
    drop(held);
}

/// Sends `request` on a fresh connection; returns everything the server answered until it
/// closed. (The server may answer and close before it has read all of a bad request.)
async fn exchange(app: &crate::helpers::TestApp, request: &str) -> String {
    let (mut reader, mut writer) = raw(app).await.into_split();
    let request = request.to_owned();
    let writing = tokio::spawn(async move { writer.write_all(request.as_bytes()).await });
    let answer = read_until_closed(&mut reader, Duration::from_secs(5)).await;
    let _ = writing.await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn the_host_header_is_required_once_on_http_1_1() {
    let app = spawn_app().await;
    // (case, request, status line, error text)
    let cases = [
        (
            "HTTP/1.1 without Host",
            "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 400 Bad Request",
            Some("must carry a `Host` header"),
        ),
        (
            "two Host headers",
            "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 400 Bad Request",
            Some("more than one `Host` header"),
        ),
        (
            "HTTP/1.0 without Host",
            "GET /healthz HTTP/1.0\r\n\r\n",
            "HTTP/1.0 200 OK",
            None,
        ),
        (
            "HTTP/1.1 with one Host",
            "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 200 OK",
            None,
        ),
    ];
    for (case, request, status, error) in cases {
        let answer = exchange(&app, request).await;
        assert!(answer.starts_with(status), "{case}: {answer:?}");
        if let Some(error) = error {
            let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
            let json: serde_json::Value = serde_json::from_str(body).expect(case);
            let text = json["error"].as_str().expect(case);
            assert!(text.contains(error), "{case}: {text}");
        }
    }
}

#[tokio::test]
async fn requests_hyper_refuses_itself_get_its_status_and_an_empty_body() {
    // The documented exception to "every error is JSON": these never reach the application.
    let app = spawn_app().await;
    let long_uri = format!(
        "GET /stream?{} HTTP/1.1\r\nHost: a\r\n\r\n",
        "a=1&".repeat(20_000)
    );
    let cases = [
        (
            "malformed request line",
            "GET\r\n\r\n".to_owned(),
            "HTTP/1.1 400 ",
        ),
        (
            "header without a colon",
            "GET / HTTP/1.1\r\nHost a\r\n\r\n".to_owned(),
            "HTTP/1.1 400 ",
        ),
        ("URI longer than the buffer", long_uri, "HTTP/1.1 4"),
    ];
    for (case, request, status) in cases {
        let answer = exchange(&app, &request).await;
        assert!(answer.starts_with(status), "{case}: {answer:?}");
        assert!(answer.ends_with("\r\n\r\n"), "{case}: a body: {answer:?}");
    }
    assert_eq!(app.get("/healthz").await.status(), 200);
}
