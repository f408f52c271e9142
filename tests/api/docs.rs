//! `/docs` over HTTP: a small page and separate assets, each with its `ETag` and
//! `Cache-Control`, relative URLs only, and Swagger UI as npm ships it. (What the page does
//! in a browser is `browser/docs.rs`.)

use reqwest::{StatusCode, header};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, spawn_app};

/// The URLs the page's `src` and `href` attributes name.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(start) = rest.find(attribute) {
            rest = &rest[start + attribute.len()..];
            let end = rest.find('"').expect("a closing quote");
            found.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    found
}

/// The page at `/docs/`, as text.
async fn page(app: &TestApp) -> String {
    let resp = app.get("/docs/").await;
    assert_eq!(resp.status(), 200);
    resp.text().await.expect("the page")
}

#[tokio::test]
async fn docs_redirect_to_their_folder_with_a_relative_location() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let resp = client
        .get(app.url("/docs"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    // Relative: behind a proxy that mounts the server at `/demo/`, `/demo/docs` must lead to
    // `/demo/docs/`, not to `/docs/`.
    assert_eq!(resp.headers()[header::LOCATION], "docs/");
    // Followed, as a browser does.
    let resp = app.get("/docs").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.url().path(), "/docs/");
}

#[tokio::test]
async fn docs_are_a_small_page_naming_separate_assets_by_relative_versioned_urls() {
    let app = spawn_app().await;
    let resp = app.get("/docs/").await;
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = resp.text().await.unwrap();
    assert!(html.len() < 4096, "the page is small: {} bytes", html.len());
    assert!(
        !html.contains("<script>") && !html.contains("<style"),
        "no inline script or style:\n{html}"
    );
    let refs = references(&html);
    for wanted in [
        "vendor/swagger-ui-bundle.js",
        "vendor/swagger-ui.css",
        "streaming.js",
        "docs.js",
        "docs.css",
    ] {
        let found = refs
            .iter()
            .find(|r| r.split('?').next() == Some(wanted))
            .unwrap_or_else(|| panic!("the page loads {wanted}: {refs:?}"));
        assert!(found.contains("?v="), "{found} names its version");
    }
    for r in &refs {
        assert!(
            !r.starts_with('/') && !r.contains("://"),
            "relative URLs only, so that the page works under a prefix: {r}"
        );
    }
    // The document is fetched, relative to the page, not inlined.
    let docs_js = app.get("/docs/docs.js").await.text().await.unwrap();
    assert!(
        docs_js.contains("new URL(\"..\", location.href)"),
        "{docs_js}"
    );
    assert!(
        docs_js.contains("validatorUrl: null"),
        "no outside validator"
    );
    assert!(
        !html.contains("\"paths\""),
        "the document is not in the page"
    );
}

#[tokio::test]
async fn every_docs_asset_has_an_etag_and_cache_control_and_revalidates_with_a_304() {
    let app = spawn_app().await;
    let html = page(&app).await;
    let mut urls: Vec<String> = references(&html)
        .into_iter()
        .filter(|r| r.contains("?v="))
        .collect();
    urls.push(String::new()); // the page itself
    for url in urls {
        let path = format!("/docs/{url}");
        let resp = app.get(&path).await;
        assert_eq!(resp.status(), 200, "{path}");
        let etag = resp.headers()[header::ETAG].clone();
        let etag_text = etag.to_str().unwrap();
        assert!(
            etag_text.starts_with('"') && etag_text.ends_with('"') && etag_text.len() == 66,
            "{path}: a strong entity tag, the content's SHA-256: {etag_text}"
        );
        let cache = resp.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .to_owned();
        let expected = if url.is_empty() {
            // The page names the assets' versions: it must be asked for again each time.
            "no-cache"
        } else {
            "public, max-age=31536000, immutable"
        };
        assert_eq!(cache, expected, "{path}");
        let body = resp.bytes().await.unwrap();
        assert!(!body.is_empty(), "{path}");

        // The client has it: a 304, no body, the same validators.
        for if_none_match in [etag_text.to_owned(), format!("W/{etag_text}"), "*".into()] {
            let again = app
                .client
                .get(app.url(&path))
                .header(header::IF_NONE_MATCH, &if_none_match)
                .send()
                .await
                .unwrap();
            assert_eq!(again.status(), 304, "{path} with {if_none_match}");
            assert_eq!(again.headers()[header::ETAG], etag, "{path}");
            assert_eq!(again.headers()[header::CACHE_CONTROL], cache, "{path}");
            assert!(
                again.bytes().await.unwrap().is_empty(),
                "{path}: a 304 has no body"
            );
        }
        // The client has another version: the whole file.
        let other = app
            .client
            .get(app.url(&path))
            .header(header::IF_NONE_MATCH, "\"0000\", W/\"1111\"")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 200, "{path}");
        assert_eq!(other.bytes().await.unwrap(), body, "{path}");
    }
    // An asset asked for without its version, or with an old one, may change: revalidate.
    for path in [
        "/docs/streaming.js",
        "/docs/streaming.js?v=0123456789abcdef",
    ] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-cache", "{path}");
    }
}

#[tokio::test]
async fn the_openapi_documents_revalidate_with_a_304() {
    let app = spawn_app().await;
    for path in ["/openapi.json", "/openapi-3.0.json"] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-cache", "{path}");
        let etag = resp.headers()[header::ETAG].clone();
        let again = app
            .client
            .get(app.url(path))
            .header(header::IF_NONE_MATCH, etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
}

#[tokio::test]
async fn vendored_swagger_ui_is_npms_unaltered_and_renders_openapi_3_2() {
    let app = spawn_app().await;
    let sums = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/static/docs/vendor/SHA256SUMS"
    ))
    .expect("SHA256SUMS is committed with the vendored files");
    let (header_line, files) = sums.split_once('\n').expect("a header line");
    // `# swagger-ui-dist 5.35.0 (sha512-…), by scripts/vendor-swagger-ui.sh`
    let version = header_line
        .strip_prefix("# swagger-ui-dist ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the version in {header_line:?}"));
    let numbers: Vec<u32> = version.split('.').filter_map(|n| n.parse().ok()).collect();
    assert!(
        numbers.as_slice() >= [5, 32].as_slice(),
        "OpenAPI 3.2 needs Swagger UI 5.32 or later; vendored: {version}"
    );
    let mut checked = 0;
    for line in files.lines() {
        let (sum, name) = line.split_once("  ").expect("`sum  name`");
        let resp = app.get(&format!("/docs/vendor/{name}")).await;
        assert_eq!(resp.status(), 200, "{name}");
        let served = resp.bytes().await.unwrap();
        let hex: String = Sha256::digest(&served)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, sum, "{name} is served as vendored");
        if name == "swagger-ui-bundle.js" {
            let needle = format!("PACKAGE_VERSION:\"{version}\"");
            let js = String::from_utf8_lossy(&served);
            assert!(js.contains(&needle), "the bundle is version {version}");
        }
        checked += 1;
    }
    assert!(checked >= 2, "the bundle and its stylesheet: {files}");
}

#[tokio::test]
async fn unknown_docs_files_and_other_methods_get_json_errors() {
    let app = spawn_app().await;
    for path in [
        "/docs/nothing.js",
        "/docs/vendor/",
        "/docs/vendor",
        "/docs/vendor/swagger-ui-bundle.js.map",
        "/docs/index.html/x",
        "/docs/docs.js/",
    ] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), 404, "{path}");
        let body: serde_json::Value = resp.json().await.expect(path);
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let resp = app.client.post(app.url("/docs/")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()[header::ALLOW], "GET, HEAD");
    // HEAD is answered as GET is, without a body.
    let head = app.client.head(app.url("/docs/")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.headers().contains_key(header::ETAG));
}
