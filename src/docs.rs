//! `/docs`: Swagger UI over the OpenAPI document, from files compiled into the binary.
//!
//! The page is small (`static/docs/index.html`) and everything else is a separate asset:
//! Swagger UI's bundle and stylesheet (`static/docs/vendor/`, vendored from npm's
//! `swagger-ui-dist` by `scripts/vendor-swagger-ui.sh`), and the plugin that makes "Execute"
//! stream (`static/docs/streaming.js`). Every response carries a strong `ETag` and is answered
//! `304 Not Modified` when the client already has it. The page names each asset with its
//! content hash (`swagger-ui.css?v=…`), and an asset asked for by its current hash may be
//! cached as immutable, without asking again: a second visit gets a 304 for the page and
//! the document and nothing else, and a new build changes the hash, so nobody keeps a
//! stale plugin.
//!
//! Every URL is relative, so the docs work under any prefix a proxy mounts the server at:
//! `/docs` redirects to `docs/`, from where `../openapi.json` and `vendor/…` resolve.
//! [`Document`] serves the OpenAPI documents the same way, revalidated by their `ETag`.

use std::{borrow::Cow, collections::HashMap, marker::PhantomData};

use bytes::Bytes;

use poem::{
    Body, Endpoint, Request, Response,
    error::NotFoundError,
    http::{HeaderMap, HeaderValue, StatusCode, header},
};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

/// Where the docs' files are inside the embedded `static/` folder.
const FOLDER: &str = "docs/";

/// The page, within [`FOLDER`].
const PAGE: &str = "index.html";

/// `Cache-Control` for an asset named by its current content hash: it never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// `Cache-Control` for the page, and for an asset not named by its hash: keep it, but ask
/// (with its `ETag`) before each use.
const REVALIDATE: &str = "no-cache";

/// One file of the docs, ready to serve.
struct Asset {
    body: Bytes,
    /// The strong entity tag: the content hash, quoted.
    etag: HeaderValue,
    /// A short form of the content hash, the `v` query parameter that names this version.
    version: String,
    content_type: &'static str,
}

/// The `/docs` endpoint over the files of `E` under [`FOLDER`] (mounted with `nest`).
pub struct Docs<E> {
    assets: HashMap<String, Asset>,
    embed: PhantomData<fn() -> E>,
}

impl<E: RustEmbed> Docs<E> {
    /// Reads (in a release build: from the binary) and hashes every file once.
    pub fn new() -> Self {
        let mut assets = HashMap::new();
        for path in E::iter() {
            let Some(name) = path.strip_prefix(FOLDER) else {
                continue;
            };
            if name == PAGE {
                continue;
            }
            if let Some(asset) = load::<E>(&path, None) {
                assets.insert(name.to_owned(), asset);
            }
        }
        // The page names each asset with its version, so it is made after them.
        let page = E::get(&format!("{FOLDER}{PAGE}")).map(|file| versioned(&file.data, &assets));
        if let Some(asset) = page.and_then(|html| load::<E>(PAGE, Some(html))) {
            assets.insert(PAGE.to_owned(), asset);
        }
        Self {
            assets,
            embed: PhantomData,
        }
    }
}

impl<E: RustEmbed> Default for Docs<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// The file `path` of `E` (or `content` in its place), hashed and typed; `None` if absent.
fn load<E: RustEmbed>(path: &str, content: Option<String>) -> Option<Asset> {
    let (body, hash) = match content {
        Some(content) => {
            let hash: [u8; 32] = Sha256::digest(content.as_bytes()).into();
            (Bytes::from(content), hash)
        }
        None => {
            let file = E::get(path)?;
            let hash = file.metadata.sha256_hash();
            let body = match file.data {
                Cow::Borrowed(bytes) => Bytes::from_static(bytes),
                // A debug build reads the files from disk.
                Cow::Owned(bytes) => Bytes::from(bytes),
            };
            (body, hash)
        }
    };
    Asset::new(body, hash, content_type(path))
}

/// `html` with each reference to an asset (`src="x"`, `href="x"`) naming its version.
fn versioned(html: &[u8], assets: &HashMap<String, Asset>) -> String {
    let mut html = String::from_utf8_lossy(html).into_owned();
    for (name, asset) in assets {
        for attribute in ["src", "href"] {
            html = html.replace(
                &format!("{attribute}=\"{name}\""),
                &format!("{attribute}=\"{name}?v={}\"", asset.version),
            );
        }
    }
    html
}

/// Lower-case hexadecimal of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The media type of a file, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "text/plain; charset=utf-8",
    }
}

/// Whether `If-None-Match` in `headers` names `etag` (or `*`), compared weakly as RFC 9110
/// §13.1.2 asks.
fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let wanted = etag.as_bytes();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|tag| tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == wanted)
}

impl<E: RustEmbed + Send + Sync> Endpoint for Docs<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let name = match req.uri().path().trim_start_matches('/') {
            "" if !req.original_uri().path().ends_with('/') => {
                // `/docs`: the page's relative URLs need the slash. Relative, so that it
                // works under a proxy's prefix too.
                return Ok(Response::builder()
                    .status(StatusCode::PERMANENT_REDIRECT)
                    .header(header::LOCATION, "docs/")
                    .finish());
            }
            "" => PAGE,
            name => name,
        };
        let asset = self.assets.get(name).ok_or(NotFoundError)?;
        let current = req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == format!("v={}", asset.version)));
        let cache = if current && name != PAGE {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        Ok(asset.respond(&req, cache))
    }
}

impl Asset {
    /// `body` as a `content_type` file.
    fn new(body: Bytes, hash: [u8; 32], content_type: &'static str) -> Option<Self> {
        let hash = hex(&hash);
        Some(Self {
            body,
            etag: HeaderValue::from_str(&format!("\"{hash}\"")).ok()?,
            version: hash[..16].to_owned(),
            content_type,
        })
    }

    /// The answer to `req`: the asset, or a 304 if the client has it already.
    fn respond(&self, req: &Request, cache: &'static str) -> Response {
        let response = Response::builder()
            .header(header::ETAG, self.etag.clone())
            .header(header::CACHE_CONTROL, cache);
        if not_modified(req.headers(), &self.etag) {
            return response.status(StatusCode::NOT_MODIFIED).finish();
        }
        response
            .content_type(self.content_type)
            .body(Body::from_bytes(self.body.clone()))
    }
}

/// A document made at start-up (the OpenAPI documents), served like the docs' page: with
/// its `ETag`, revalidated on each use, so a second visit to the docs gets a 304 for it.
pub struct Document(Asset);

impl Document {
    /// `body`, served as JSON.
    pub fn json(body: String) -> Self {
        let hash: [u8; 32] = Sha256::digest(body.as_bytes()).into();
        let asset = Asset::new(Bytes::from(body), hash, "application/json")
            .expect("a hexadecimal entity tag is a valid header value");
        Self(asset)
    }
}

impl Endpoint for Document {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        Ok(self.0.respond(&req, REVALIDATE))
    }
}

#[cfg(test)]
mod tests {
    use poem::http::{HeaderMap, HeaderValue, header};

    use super::not_modified;

    #[test]
    fn if_none_match_is_compared_weakly_in_any_list() {
        let etag = HeaderValue::from_static("\"abc\"");
        let cases = [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("\"x\",W/\"abc\"", true),
            ("*", true),
            ("\"abcd\"", false),
            ("abc", false),
            ("", false),
            ("\"ABC\"", false),
        ];
        for (value, expected) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(value).expect("a header value"),
            );
            assert_eq!(not_modified(&headers, &etag), expected, "{value:?}");
        }
        assert!(!not_modified(&HeaderMap::new(), &etag), "no header");
    }
}
