//! Files served as they are — the page, the docs, the OpenAPI documents — each with a strong
//! `ETag` (a `304` when the client has it already), a `Cache-Control`, and, when the client
//! asks (`Accept-Encoding`), in gzip.
//!
//! A text file is compressed once, by the first request that asks for it in gzip, and kept:
//! the largest (Swagger UI's bundle) once per process, a moment's work, instead of at every
//! start of every server. Each encoding is its own representation, with its own `ETag`.

use std::{borrow::Cow, collections::HashMap, marker::PhantomData, sync::OnceLock};

use bytes::Bytes;
use chunkstream_zlib::{Deflate, Wrapper};
use poem::{
    Body, Endpoint, Request, Response,
    error::NotFoundError,
    http::{HeaderMap, HeaderValue, StatusCode, header},
};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

use crate::{streams::Encoding, transport::compress};

/// `Cache-Control` for a file that may change: keep it, but ask (with its `ETag`) before
/// each use.
pub const REVALIDATE: &str = "no-cache";

/// zlib's settings for a file compressed once and sent many times: its best.
const GZIP: (u8, u8, u8) = (9, 15, 8);

/// One file, ready to serve.
pub struct Asset {
    body: Bytes,
    /// The strong entity tag: the content hash, quoted.
    etag: HeaderValue,
    /// The content hash in hexadecimal.
    hash: String,
    content_type: &'static str,
    /// Whether the file is worth compressing (text is; images are compressed already).
    compressible: bool,
    /// The file in gzip with its own entity tag, made by the first request that asks;
    /// `None` when gzip would not make it smaller.
    gzip: OnceLock<Option<(Bytes, HeaderValue)>>,
}

impl Asset {
    /// `body`, a `content_type` file whose SHA-256 is `hash`.
    pub fn new(body: Bytes, hash: [u8; 32], content_type: &'static str) -> Self {
        let hash: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            body,
            etag: HeaderValue::from_str(&format!("\"{hash}\""))
                .expect("a quoted hexadecimal hash is a header value"),
            hash,
            compressible: content_type.starts_with("text/")
                || content_type.starts_with("application/json")
                || content_type.starts_with("image/svg"),
            content_type,
            gzip: OnceLock::new(),
        }
    }

    /// `body`, hashed here.
    pub fn hashed(body: Bytes, content_type: &'static str) -> Self {
        let hash: [u8; 32] = Sha256::digest(&body).into();
        Self::new(body, hash, content_type)
    }

    /// The file `path` of `E` (in a release build, from the binary); `None` if absent.
    pub fn embedded<E: RustEmbed>(path: &str) -> Option<Self> {
        let file = E::get(path)?;
        let hash = file.metadata.sha256_hash();
        let body = match file.data {
            Cow::Borrowed(bytes) => Bytes::from_static(bytes),
            // A debug build reads the files from disk.
            Cow::Owned(bytes) => Bytes::from(bytes),
        };
        Some(Self::new(body, hash, content_type(path)))
    }

    /// The content hash in hexadecimal.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The answer to `req`, with `cache` as its `Cache-Control`: the file in the encoding
    /// the request asks for (gzip only if `compress`), or a `304` if the client has it.
    pub fn respond(&self, req: &Request, cache: &'static str, compress: bool) -> Response {
        let gzip =
            compress && self.compressible && compress::negotiate(req.headers()) == Encoding::Gzip;
        let gzipped = if gzip { self.gzipped() } else { None };
        let (body, etag) = match gzipped {
            Some((body, etag)) => (body, etag),
            None => (&self.body, &self.etag),
        };
        let mut response = Response::builder()
            .header(header::ETAG, etag.clone())
            .header(header::CACHE_CONTROL, cache);
        if self.compressible {
            response = response.header(header::VARY, "accept-encoding");
        }
        if not_modified(req.headers(), etag) {
            return response.status(StatusCode::NOT_MODIFIED).finish();
        }
        if gzipped.is_some() {
            response = response.header(header::CONTENT_ENCODING, "gzip");
        }
        response
            .content_type(self.content_type)
            .body(Body::from_bytes(body.clone()))
    }

    /// The file in gzip, compressed the first time it is asked for.
    fn gzipped(&self) -> Option<&(Bytes, HeaderValue)> {
        self.gzip
            .get_or_init(|| {
                let (level, window, memory) = GZIP;
                let mut deflate = Deflate::new(Wrapper::Gzip, level, window, memory).ok()?;
                let mut out = Vec::with_capacity(self.body.len() / 3 + 64);
                deflate.flush(&self.body, &mut out);
                deflate.finish(&mut out);
                let etag = HeaderValue::from_str(&format!("\"{}-gzip\"", self.hash)).ok()?;
                (out.len() < self.body.len()).then(|| (Bytes::from(out), etag))
            })
            .as_ref()
    }
}

/// The media type of a file, by its extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
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

/// The files of `E` (mounted with `nest`), or one of them (at `at`), revalidated on each use.
pub struct Files<E> {
    files: HashMap<String, Asset>,
    /// The file served for the mount point itself, if any.
    index: Option<String>,
    compress: bool,
    embed: PhantomData<fn() -> E>,
}

impl<E: RustEmbed> Files<E> {
    /// Every file of `E`, by its path; gzip when asked, if `compress`.
    pub fn all(compress: bool) -> Self {
        let files = E::iter()
            .filter_map(|path| Some((path.to_string(), Asset::embedded::<E>(&path)?)))
            .collect();
        Self {
            files,
            index: None,
            compress,
            embed: PhantomData,
        }
    }

    /// The file `path` of `E` alone, served at the mount point.
    pub fn one(path: &str, compress: bool) -> Self {
        let files = Asset::embedded::<E>(path)
            .map(|asset| (path.to_owned(), asset))
            .into_iter()
            .collect();
        Self {
            files,
            index: Some(path.to_owned()),
            compress,
            embed: PhantomData,
        }
    }
}

impl<E: RustEmbed + Send + Sync> Endpoint for Files<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let path = req.uri().path().trim_start_matches('/');
        let name = match (path, &self.index) {
            ("", Some(index)) => index.as_str(),
            (_, Some(_)) => return Err(NotFoundError.into()),
            (path, None) => path,
        };
        let asset = self.files.get(name).ok_or(NotFoundError)?;
        Ok(asset.respond(&req, REVALIDATE, self.compress))
    }
}

/// A document made at start-up (the OpenAPI documents), served like the docs' page: with
/// its `ETag`, revalidated on each use.
pub struct Document {
    asset: Asset,
    compress: bool,
}

impl Document {
    /// `body`, served as JSON; gzip when asked, if `compress`.
    pub fn json(body: String, compress: bool) -> Self {
        Self {
            asset: Asset::hashed(Bytes::from(body), "application/json"),
            compress,
        }
    }
}

impl Endpoint for Document {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        Ok(self.asset.respond(&req, REVALIDATE, self.compress))
    }
}

#[cfg(test)]
mod tests {
    use poem::http::{HeaderMap, HeaderValue, header};

    use super::*;

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

    #[test]
    fn a_text_file_is_gzipped_once_with_its_own_tag_and_an_image_never() {
        let text = Asset::hashed(Bytes::from("hello ".repeat(1000)), "text/plain");
        let (body, etag) = text.gzipped().expect("text compresses");
        assert!(body.len() < 100, "{}", body.len());
        assert_ne!(etag, &text.etag);
        assert!(std::ptr::eq(
            text.gzipped().unwrap(),
            text.gzipped().unwrap()
        ));
        let tiny = Asset::hashed(Bytes::from("x"), "text/plain");
        assert!(tiny.gzipped().is_none(), "gzip would make it bigger");
        let image = Asset::hashed(Bytes::from(vec![0; 1000]), "image/png");
        assert!(!image.compressible);
    }
}
