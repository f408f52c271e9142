//! Bad input, each case named: a 4xx JSON body naming the problem, never a 5xx.

use crate::helpers::spawn_app;

#[tokio::test]
async fn bad_requests_get_a_json_error_naming_the_problem() {
    let app = spawn_app().await;
    // (case, method, path, status, text the error must contain)
    let cases = [
        ("negative count", "GET", "/stream?count=-1", 400, "`count`"),
        (
            "non-numeric count",
            "GET",
            "/stream?count=ten",
            400,
            "`count`",
        ),
        ("empty count", "GET", "/stream?count=", 400, "`count`"),
        (
            "fractional count",
            "GET",
            "/stream?count=1.5",
            400,
            "`count`",
        ),
        (
            "count over the maximum",
            "GET",
            "/stream?count=100000001",
            400,
            "`count`",
        ),
        (
            "count past u64",
            "GET",
            "/stream?count=99999999999999999999999",
            400,
            "`count`",
        ),
        (
            "negative interval",
            "GET",
            "/stream?interval_ms=-5",
            400,
            "`interval_ms`",
        ),
        (
            "interval over the maximum",
            "GET",
            "/stream?interval_ms=60001",
            400,
            "`interval_ms`",
        ),
        (
            "non-numeric interval",
            "GET",
            "/stream?interval_ms=fast",
            400,
            "`interval_ms`",
        ),
        ("negative start", "GET", "/stream?start=-1", 400, "`start`"),
        (
            "start past count",
            "GET",
            "/stream?count=3&start=4",
            400,
            "`start`",
        ),
        (
            "start past default count",
            "GET",
            "/stream?start=11",
            400,
            "`start`",
        ),
        (
            "bad count on the WebSocket route",
            "GET",
            "/stream/ws?count=x",
            400,
            "`count`",
        ),
        ("unknown route", "GET", "/nope", 404, "/nope"),
        (
            "unknown stream route",
            "GET",
            "/stream/nope",
            404,
            "/stream/nope",
        ),
        ("trailing slash", "GET", "/stream/", 404, "/stream/"),
        ("a longer name", "GET", "/streams", 404, "/streams"),
        ("doubled slash", "GET", "//stream", 404, "//stream"),
        ("wrong method", "POST", "/stream", 405, "POST"),
        (
            "wrong method on health",
            "DELETE",
            "/healthz",
            405,
            "DELETE",
        ),
        (
            "wrong method on the spec",
            "POST",
            "/openapi.json",
            405,
            "POST",
        ),
        (
            "wrong method on the docs",
            "DELETE",
            "/docs/",
            405,
            "DELETE",
        ),
        ("wrong method on the page", "PUT", "/", 405, "PUT"),
        (
            "wrong method on an asset",
            "POST",
            "/static/app.js",
            405,
            "POST",
        ),
        (
            "wrong method on an unknown route",
            "POST",
            "/nope",
            404,
            "/nope",
        ),
    ];
    for (case, method, path, status, needle) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = app
            .client
            .request(method, app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{case}");
        let allow = resp
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            resp.headers()["content-type"],
            "application/json; charset=utf-8",
            "{case}"
        );
        let body: serde_json::Value = resp.json().await.expect(case);
        let error = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{case}: {body}"));
        assert!(error.contains(needle), "{case}: {error}");
        assert_eq!(body.as_object().unwrap().len(), 1, "{case}: {body}");
        if status == 405 {
            assert_eq!(allow, Some("GET, HEAD".to_owned()), "{case}");
        }
    }
}

#[tokio::test]
async fn healthz_says_ok() {
    let app = spawn_app().await;
    let resp = app.get("/healthz").await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}
