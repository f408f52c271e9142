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
//! `/docs` redirects to `docs/`, from where `../openapi.json` and `vendor/…` resolve. Each
//! file is served as [`crate::assets`] serves files: with its `ETag`, and in gzip when asked.

use std::{collections::HashMap, marker::PhantomData};

use bytes::Bytes;
use poem::{
    Endpoint, Request, Response,
    error::NotFoundError,
    http::{StatusCode, header},
};
use rust_embed::RustEmbed;

use crate::assets::{Asset, REVALIDATE, content_type};

/// Where the docs' files are inside the embedded `static/` folder.
const FOLDER: &str = "docs/";

/// The page, within [`FOLDER`].
const PAGE: &str = "index.html";

/// `Cache-Control` for an asset named by its current content hash: it never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The short form of an asset's content hash that names its version (`?v=…`).
fn version(asset: &Asset) -> &str {
    &asset.hash()[..16]
}

/// The `/docs` endpoint over the files of `E` under [`FOLDER`] (mounted with `nest`).
pub struct Docs<E> {
    assets: HashMap<String, Asset>,
    /// Whether files go out in gzip when the client asks.
    compress: bool,
    embed: PhantomData<fn() -> E>,
}

impl<E: RustEmbed> Docs<E> {
    /// Reads (in a release build: from the binary) and hashes every file once; gzip when
    /// asked, if `compress`.
    pub fn new(compress: bool) -> Self {
        let mut assets = HashMap::new();
        for path in E::iter() {
            let Some(name) = path.strip_prefix(FOLDER) else {
                continue;
            };
            if name == PAGE {
                continue;
            }
            if let Some(asset) = Asset::embedded::<E>(&path) {
                assets.insert(name.to_owned(), asset);
            }
        }
        // The page names each asset with its version, so it is made after them.
        let page = E::get(&format!("{FOLDER}{PAGE}")).map(|file| versioned(&file.data, &assets));
        if let Some(html) = page {
            let asset = Asset::hashed(Bytes::from(html), content_type(PAGE));
            assets.insert(PAGE.to_owned(), asset);
        }
        Self {
            assets,
            compress,
            embed: PhantomData,
        }
    }
}

/// `html` with each reference to an asset (`src="x"`, `href="x"`) naming its version.
fn versioned(html: &[u8], assets: &HashMap<String, Asset>) -> String {
    let mut html = String::from_utf8_lossy(html).into_owned();
    for (name, asset) in assets {
        for attribute in ["src", "href"] {
            html = html.replace(
                &format!("{attribute}=\"{name}\""),
                &format!("{attribute}=\"{name}?v={}\"", version(asset)),
            );
        }
    }
    html
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
            .is_some_and(|q| q.split('&').any(|p| p == format!("v={}", version(asset))));
        let cache = if current && name != PAGE {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        Ok(asset.respond(&req, cache, self.compress))
    }
}
